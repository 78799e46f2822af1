//! Test stand-ins.
