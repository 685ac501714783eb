//! The staking module (`0x…b77001`): validators, delegations, rewards, slashing and the
//! active set of each epoch.
