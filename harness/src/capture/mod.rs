//! The capture format (pcapng).
