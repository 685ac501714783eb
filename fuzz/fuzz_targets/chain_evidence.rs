//! Equivocation evidence arrives in transactions from anyone: reading its epoch and verifying it
//! against a committee must never panic, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use chain_consensus::{evidence_epoch, namespace, verify_evidence, ValidatorInfo, ValidatorKeys};

const CHAIN: u64 = 7215;

fn committee() -> &'static [ValidatorInfo] {
    static COMMITTEE: OnceLock<Vec<ValidatorInfo>> = OnceLock::new();
    COMMITTEE.get_or_init(|| {
        (1..=4u8)
            .map(|i| ValidatorKeys::generate([i; 32]).public(&namespace(CHAIN)))
            .collect()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let epoch = evidence_epoch(data);
    let verdict = verify_evidence(CHAIN, committee(), data);
    if let Ok(proof) = verdict {
        // Verified evidence claims the epoch it was checked for.
        assert_eq!(epoch.ok(), Some(proof.epoch));
    }
});
