//! (magazine layer: depot)
