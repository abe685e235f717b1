"""Die of SIGSEGV (no core file): trinit must exit 128 + 11 = 139."""

import os
import resource
import signal

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
signal.signal(signal.SIGSEGV, signal.SIG_DFL)
os.kill(os.getpid(), signal.SIGSEGV)
