//! The replay driver: paced replay into emulated kernel rings.
