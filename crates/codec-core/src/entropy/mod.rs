//! The only user of `constriction`: integer CDF tables from the model file and symbol streams.
//!
//! STUB: to be implemented. See docs/tfci-format.md for the string layout.
