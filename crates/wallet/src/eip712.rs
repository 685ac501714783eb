//! EIP-712 typed structured data hashing, for fixed structs whose type string is known.
//!
//! The digest a wallet signs is `keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(message))`
//! ([`signing_hash`]). `hashStruct(s) = keccak256(typeHash ‖ encodeData(s))` ([`hash_struct`])
//! where `typeHash = keccak256(encodeType)` ([`type_hash`]) and every member is encoded as one
//! 32-byte word by the `encode_*` helpers below. Nested structs are encoded as their own
//! `hash_struct`.
//!
//! ```
//! use wallet::eip712::{encode_u256, hash_struct, type_hash};
//! // A payment-channel voucher: Voucher(bytes32 channelId,uint256 cumulative).
//! let ty = type_hash("Voucher(bytes32 channelId,uint256 cumulative)");
//! let channel_id = [7u8; 32];
//! let voucher = hash_struct(&ty, &[channel_id, encode_u256(1_000_000)]);
//! assert_eq!(voucher.len(), 32);
//! ```

use crate::{keccak256, Address};

/// The EIP-712 domain with the four fields our contracts use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip712Domain {
    /// The user-readable name of the signing domain (the dapp or protocol).
    pub name: String,
    /// The current major version of the domain.
    pub version: String,
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// The contract (or native module) that verifies the signature.
    pub verifying_contract: Address,
}

impl Eip712Domain {
    /// `encodeType` of the domain struct, fields in this order.
    pub const TYPE: &'static str =
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";

    /// `hashStruct(domain)`, the domain separator.
    pub fn separator(&self) -> [u8; 32] {
        hash_struct(
            &type_hash(Self::TYPE),
            &[
                encode_string(&self.name),
                encode_string(&self.version),
                encode_u256(u128::from(self.chain_id)),
                encode_address(&self.verifying_contract),
            ],
        )
    }
}

/// `typeHash = keccak256(encodeType)`, e.g. `type_hash("Mail(Person from,…)Person(…)")`.
pub fn type_hash(encode_type: &str) -> [u8; 32] {
    keccak256(encode_type.as_bytes())
}

/// `hashStruct = keccak256(typeHash ‖ field₁ ‖ … ‖ fieldₙ)` with fields already encoded as words
/// in the order of the type string.
pub fn hash_struct(type_hash: &[u8; 32], fields: &[[u8; 32]]) -> [u8; 32] {
    let mut data = Vec::with_capacity(32 * (1 + fields.len()));
    data.extend_from_slice(type_hash);
    for field in fields {
        data.extend_from_slice(field);
    }
    keccak256(&data)
}

/// The digest to sign: `keccak256(0x19 0x01 ‖ domain_separator ‖ struct_hash)`.
pub fn signing_hash(domain_separator: &[u8; 32], struct_hash: &[u8; 32]) -> [u8; 32] {
    let mut data = [0u8; 66];
    data[0] = 0x19;
    data[1] = 0x01;
    data[2..34].copy_from_slice(domain_separator);
    data[34..].copy_from_slice(struct_hash);
    keccak256(data)
}

/// An `address` member: left-padded with zeros to 32 bytes.
pub fn encode_address(address: &Address) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&address.0);
    word
}

/// A `uintN` member (N ≤ 128) as a big-endian word; wider values are already words
/// (`bytes32`-style: pass them through unchanged).
pub fn encode_u256(value: u128) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[16..].copy_from_slice(&value.to_be_bytes());
    word
}

/// A `bool` member: 0 or 1 as a word.
pub fn encode_bool(value: bool) -> [u8; 32] {
    encode_u256(u128::from(value))
}

/// A `string` member: the Keccak-256 of its UTF-8 bytes.
pub fn encode_string(value: &str) -> [u8; 32] {
    keccak256(value.as_bytes())
}

/// A dynamic `bytes` member: the Keccak-256 of its contents.
pub fn encode_bytes(value: &[u8]) -> [u8; 32] {
    keccak256(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    fn word(s: &str) -> [u8; 32] {
        hex::decode_array(s).unwrap()
    }

    /// The "Mail" example of the EIP-712 specification.
    #[test]
    fn eip712_mail_example() {
        let domain = Eip712Domain {
            name: "Ether Mail".into(),
            version: "1".into(),
            chain_id: 1,
            verifying_contract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
                .parse()
                .unwrap(),
        };
        assert_eq!(
            domain.separator(),
            word("f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f")
        );

        let person = type_hash("Person(string name,address wallet)");
        let mail = type_hash(
            "Mail(Person from,Person to,string contents)Person(string name,address wallet)",
        );
        assert_eq!(
            mail,
            word("a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2")
        );
        let cow = hash_struct(
            &person,
            &[
                encode_string("Cow"),
                encode_address(
                    &"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
                        .parse()
                        .unwrap(),
                ),
            ],
        );
        let bob = hash_struct(
            &person,
            &[
                encode_string("Bob"),
                encode_address(
                    &"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"
                        .parse()
                        .unwrap(),
                ),
            ],
        );
        let message = hash_struct(&mail, &[cow, bob, encode_string("Hello, Bob!")]);
        assert_eq!(
            message,
            word("c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e")
        );
        assert_eq!(
            signing_hash(&domain.separator(), &message),
            word("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
        );

        let signer = crate::Signer::new(crate::PrivateKey::from_bytes(&keccak256(b"cow")).unwrap());
        let sig = signer.sign_typed_data(&domain, &message);
        assert_eq!(sig.v(), 28);
        assert_eq!(
            sig.r,
            word("4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d")
        );
        assert_eq!(
            sig.s,
            word("07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562")
        );
    }

    #[test]
    fn word_encoders() {
        assert_eq!(encode_u256(1)[31], 1);
        assert_eq!(encode_u256(u128::MAX)[..16], [0; 16]);
        assert_eq!(encode_bool(true), encode_u256(1));
        assert_eq!(encode_bool(false), [0; 32]);
        assert_eq!(encode_bytes(b""), keccak256(b""));
    }
}
