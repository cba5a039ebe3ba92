// The protobuf generator of `make proto`, a module of its own so the
// operator's go.mod does not carry it. Its google.golang.org/protobuf
// version is the operator's: the generated code matches the runtime.
module github.com/aivm-dev/aivm-operator/hack/protogen

go 1.26.0

require (
	github.com/bufbuild/protocompile v0.14.1
	google.golang.org/protobuf v1.36.12
)

require golang.org/x/sync v0.8.0 // indirect
