package rmi_test

import (
	"fmt"

	"cca-testbed/rmi"
)

// The host-da role boots with the rmm-1.1 profile: the glue learns RMI and
// DA, and the answers travel to the guest on its command line.
func ExampleProbe() {
	p, err := rmi.LookupProfile("rmm-1.1")
	if err != nil {
		panic(err)
	}
	d, table := rmi.Probe(rmi.New(p))
	fmt.Printf("%+v\n", d)
	fmt.Println(table[0])

	// The guest side replays the same answers from the parameter.
	replayed, err := rmi.ParseCmdline(table.Cmdline())
	if err != nil {
		panic(err)
	}
	again, _ := rmi.Probe(replayed)
	fmt.Printf("%+v\n", again)
	// Output:
	// {RMI:true DA:true RSI:false RMI20:false DAReg2:false SMCCC11:false EL2:false RealmDA:false}
	// RMI_VERSION(0x10000) = 0x0 0x10000 0x10001 0x0
	// {RMI:true DA:true RSI:false RMI20:false DAReg2:false SMCCC11:false EL2:false RealmDA:false}
}
