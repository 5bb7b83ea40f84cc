//! Paced syscall load.
