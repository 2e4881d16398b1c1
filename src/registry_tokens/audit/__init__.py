"""The audit log: who did what to which registry token, and every refused use of one."""
