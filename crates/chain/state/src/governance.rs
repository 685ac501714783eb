//! The governance module (`0x…b77002`): proposals, stake-weighted votes, and the governed
//! parameters.
