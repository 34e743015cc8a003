"""The thin Linux layer: one module per syscall family, each a small ctypes
wrapper that raises OSError(errno, strerror, path). Nothing here decides
policy; callers do. Import a module only where it is used: ctypes set-up costs
start-up time on paths (state, list) that never need it."""
