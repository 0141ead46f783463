package rmi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrCmdline is wrapped by every ParseCmdline error.
var ErrCmdline = errors.New("cca_testbed.smc")

// CmdlineParam is the kernel command line parameter that carries a Table
// into a guest (kernel-configs/README.md).
const CmdlineParam = "cca_testbed.smc"

// Answer is one observed call: function ID, first argument (x1) and x0..x3.
type Answer struct {
	FID uint32
	Arg uint64
	Ret [4]uint64
}

// String prints the answer for logs, e.g.
// "RMI_VERSION(0x10000) = 0x0 0x10000 0x10001 0x0".
func (a Answer) String() string {
	return fmt.Sprintf("%s(%#x) = %#x %#x %#x %#x", FIDName(a.FID), a.Arg, a.Ret[0], a.Ret[1], a.Ret[2], a.Ret[3])
}

// Table is a list of recorded answers. It is itself a Caller that replays
// them: a (FID, first argument) pair it does not list answers as a call
// nothing implements (Unknown), exactly as the kernel glue treats the
// command line.
type Table []Answer

var _ Caller = Table(nil)

// SMC replays the first answer recorded for (fid, args[0]); a missing
// argument counts as 0.
func (t Table) SMC(fid uint32, args ...uint64) [4]uint64 {
	var arg uint64
	if len(args) > 0 {
		arg = args[0]
	}
	for _, a := range t {
		if a.FID == fid && a.Arg == arg {
			return a.Ret
		}
	}
	return Unknown(args...)
}

// Cmdline renders the table as the kernel parameter,
// "cca_testbed.smc=FID:ARG:R0:R1:R2:R3,..." in lowercase hex without 0x.
// Answers the glue would give an unlisted call anyway (x0 NotSupported,
// x1 the argument, x2 and x3 zero: Unknown of the glue's arguments) are
// left out, since the parameter's room is bounded;
// "cca_testbed.smc=none" when nothing else is left.
func (t Table) Cmdline() string {
	var listed Table
	for _, a := range t {
		if a.Ret != Unknown(a.Arg, 0, 0) {
			listed = append(listed, a)
		}
	}
	if len(listed) == 0 {
		return CmdlineParam + "=none"
	}
	return CmdlineParam + "=" + listed.Value()
}

// Value renders every answer as "FID:ARG:R0:R1:R2:R3,..." (lowercase hex
// without 0x), NotSupported ones included: the format of the glue's
// answers parameter, which ParseCmdline reads back.
func (t Table) Value() string {
	var b strings.Builder
	for i, a := range t {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%x:%x:%x:%x:%x:%x", a.FID, a.Arg, a.Ret[0], a.Ret[1], a.Ret[2], a.Ret[3])
	}
	return b.String()
}

var fieldNames = [6]string{"FID", "ARG", "R0", "R1", "R2", "R3"}

// ParseCmdline parses what Cmdline renders. It accepts the value alone
// ("none", "c4000150:10000:0:10000:10000:0,..."), the parameter
// ("cca_testbed.smc=..."), or a whole kernel command line, in which case the
// last cca_testbed.smc= wins as it does for the kernel. "none" yields an
// empty Table. Errors name the entry and field that is wrong and wrap
// ErrCmdline.
func ParseCmdline(s string) (Table, error) {
	s = strings.TrimSpace(s)
	if words := strings.Fields(s); len(words) > 1 {
		found := false
		for _, w := range words {
			if v, ok := strings.CutPrefix(w, CmdlineParam+"="); ok {
				s, found = v, true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: no %s= parameter in the %d-word command line; add one or pass the value alone", ErrCmdline, CmdlineParam, len(words))
		}
	} else if v, ok := strings.CutPrefix(s, CmdlineParam+"="); ok {
		s = v
	}
	switch s {
	case "":
		return nil, fmt.Errorf("%w: empty value; write %s=none for no firmware", ErrCmdline, CmdlineParam)
	case "none":
		return Table{}, nil
	}
	entries := strings.Split(s, ",")
	t := make(Table, 0, len(entries))
	seen := make(map[[2]uint64]int, len(entries))
	for i, e := range entries {
		n := i + 1
		fields := strings.Split(e, ":")
		if len(fields) != 6 {
			return nil, fmt.Errorf("%w: entry %d %q has %d fields, want 6 (FID:ARG:R0:R1:R2:R3)", ErrCmdline, n, e, len(fields))
		}
		var v [6]uint64
		for j, f := range fields {
			bits := 64
			if j == 0 {
				bits = 32
			}
			x, err := strconv.ParseUint(f, 16, bits)
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d %q: field %s %q: %s", ErrCmdline, n, e, fieldNames[j], f, hexProblem(f, bits))
			}
			v[j] = x
		}
		key := [2]uint64{v[0], v[1]}
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("%w: entry %d %q repeats FID:ARG %x:%x of entry %d; keep one", ErrCmdline, n, e, v[0], v[1], prev)
		}
		seen[key] = n
		t = append(t, Answer{FID: uint32(v[0]), Arg: v[1], Ret: [4]uint64{v[2], v[3], v[4], v[5]}})
	}
	return t, nil
}

// hexProblem says in words why f is not a hex number of at most bits bits.
func hexProblem(f string, bits int) string {
	switch {
	case f == "":
		return "empty; write 0 for zero"
	case strings.HasPrefix(f, "0x") || strings.HasPrefix(f, "0X"):
		return "remove the 0x prefix (all numbers are hex)"
	case strings.Trim(f, "0123456789abcdefABCDEF") != "":
		return "not a hex number"
	}
	return fmt.Sprintf("more than %d bits", bits)
}
