module cca-testbed

go 1.26.0

require (
	github.com/fxamacker/cbor/v2 v2.9.0
	github.com/hashicorp/go-multierror v1.1.1
	github.com/veraison/go-cose v1.3.0
	golang.org/x/crypto v0.59.0
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
