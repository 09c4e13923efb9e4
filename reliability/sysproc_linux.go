package reliability

import "syscall"

// sysProcAttr makes the kernel kill the server if the test process dies first, so no authz is
// left running after an aborted test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
