//! The results schema shared by every run.
