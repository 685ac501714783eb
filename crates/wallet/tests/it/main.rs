//! End-to-end use of the public API: a keystore directory holding a file written by another
//! tool, new keys next to it, and signatures that recover to the listed addresses.

#![allow(clippy::unwrap_used)]

use wallet::eip712::{encode_u256, hash_struct, signing_hash, type_hash};
use wallet::{hash_message, Address, Eip712Domain, Error, Keystore, Password, ScryptParams};

/// The Web3 Secret Storage PBKDF2 test vector as geth would store it (with its address).
const FOREIGN_KEY_FILE: &str = r#"{"address":"008aeeda4d805471df9b2a5b0f38a0c3bcba786b","crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},"ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},"mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;

#[test]
fn foreign_and_new_keys_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let keystore = Keystore::open(tmp.path().join("keystore"))
        .unwrap()
        .with_scrypt(ScryptParams::new(10, 8, 1).unwrap());
    std::fs::write(
        keystore
            .dir()
            .join("UTC--2016-01-01T00-00-00.000000000Z--008aeeda4d805471df9b2a5b0f38a0c3bcba786b"),
        FOREIGN_KEY_FILE,
    )
    .unwrap();
    let foreign: Address = "0x008aeeda4d805471df9b2a5b0f38a0c3bcba786b"
        .parse()
        .unwrap();

    let password = Password::new("testpassword");
    let created = keystore.create(&Password::new("another")).unwrap();
    let mut expected = vec![foreign, created];
    expected.sort();
    assert_eq!(keystore.list().unwrap(), expected);

    // The foreign key decrypts to the address its file claims.
    let signer = keystore.unlock(&foreign, &password).unwrap();
    assert_eq!(signer.address(), foreign);
    let err = keystore
        .unlock(&foreign, &Password::new("another"))
        .unwrap_err();
    assert!(matches!(err, Error::WrongPassword));

    // Importing the same secret again is refused.
    let again = keystore.import(
        "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d",
        &password,
    );
    assert!(matches!(again, Err(Error::KeyExists { .. })));

    // personal_sign and an EIP-712 voucher both recover to the signer.
    let sig = signer.sign_message(b"btt");
    assert_eq!(sig.recover(&hash_message(b"btt")).unwrap(), foreign);
    let domain = Eip712Domain {
        name: "BTT Channels".into(),
        version: "1".into(),
        chain_id: 1,
        verifying_contract: Address([0x11; 20]),
    };
    let voucher = hash_struct(
        &type_hash("Voucher(bytes32 channelId,uint256 cumulative)"),
        &[[0xab; 32], encode_u256(42)],
    );
    let sig = signer.sign_typed_data(&domain, &voucher);
    let digest = signing_hash(&domain.separator(), &voucher);
    assert_eq!(sig.recover(&digest).unwrap(), foreign);
}
