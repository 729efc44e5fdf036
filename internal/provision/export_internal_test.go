package provision

// Unexported parts the external tests (package provision_test) call.
var (
	ListSlimVMs  = listSlimVMs
	ListSlimVMIs = listSlimVMIs
)
