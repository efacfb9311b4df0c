//! Integration tests for the workspace live in `tests/tests/`: they start the real
//! `kvcache-server` and `slabtune` binaries on loopback ports and check their answers
//! byte for byte. This library holds the helpers they share.
