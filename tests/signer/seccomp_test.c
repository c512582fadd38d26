/* Installs qsignd's seccomp filter, then calls execve: must die by SIGSYS
 * (checked by seccomp_test.sh). */
#include "harden.h"

int
main(void)
{
	harden_seccomp_selftest();
	return 5; /* not reached when the filter works */
}
