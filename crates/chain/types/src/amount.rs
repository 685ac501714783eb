//! BTT amounts: integer base units (wei, 10⁻¹⁸ BTT) and exact decimal text.
//!
//! Text form: `<digits>` or `<digits>.<digits>`, at most 18 fractional digits, no sign, no
//! exponent, no whitespace, no separators. `"1.5"` is 1.5 BTT = 1 500 000 000 000 000 000 wei.
//! Parsing and formatting use integer arithmetic only, so every value round-trips exactly.

use std::fmt;

use alloy_primitives::U256;

use crate::rpc::{RpcError, INVALID_PARAMS};

/// BTT has 18 decimals, like ether.
pub const DECIMALS: usize = 18;

/// Base units in one BTT (10¹⁸).
pub const WEI_PER_BTT: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// Why a BTT amount text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The text is empty.
    #[error("amount is empty: write a number of BTT such as 1.5")]
    Empty,
    /// The text starts with a minus sign.
    #[error("amount is negative: amounts of BTT are never below zero")]
    Negative,
    /// A character that is not a digit (or a second decimal point).
    #[error(
        "amount has an invalid character {found:?} at position {position}: use digits and one '.'"
    )]
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Its byte offset.
        position: usize,
    },
    /// No digits before or after the decimal point (`".5"`, `"1."`).
    #[error("amount needs digits on both sides of the '.': write 0.5 or 1")]
    MissingDigits,
    /// More than [`DECIMALS`] fractional digits: the value is finer than one wei.
    #[error("amount has {0} decimals, BTT has only 18")]
    TooManyDecimals(usize),
    /// The value does not fit in 256 bits of wei.
    #[error("amount is too large: it does not fit in 256 bits of wei")]
    Overflow,
}

impl RpcError for AmountError {
    fn rpc_code(&self) -> i32 {
        INVALID_PARAMS
    }
}

/// An amount of BTT in base units (wei). Arithmetic is checked: overflow is an error, never a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Wei(pub U256);

impl Wei {
    /// No BTT.
    pub const ZERO: Self = Self(U256::ZERO);
    /// One BTT.
    pub const ONE_BTT: Self = Self(WEI_PER_BTT);

    /// `n` base units.
    pub const fn from_wei(n: u128) -> Self {
        Self(U256::from_limbs([n as u64, (n >> 64) as u64, 0, 0]))
    }

    /// `btt` whole BTT.
    pub fn from_btt(btt: u64) -> Self {
        // 2⁶⁴ × 10¹⁸ < 2¹²⁸: cannot overflow.
        Self(U256::from(btt) * WEI_PER_BTT)
    }

    /// The base units.
    pub const fn as_u256(self) -> U256 {
        self.0
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        self.0.checked_add(rhs.0).map(Self)
    }

    /// `self - rhs`, or `None` below zero.
    pub fn checked_sub(self, rhs: Self) -> Option<Self> {
        self.0.checked_sub(rhs.0).map(Self)
    }

    /// `self × n` (a price per gas times gas), or `None` on overflow.
    pub fn checked_mul(self, n: u64) -> Option<Self> {
        self.0.checked_mul(U256::from(n)).map(Self)
    }

    /// Parses decimal BTT text (`"1.5"`) into base units. See the module docs for the grammar.
    pub fn parse_btt(text: &str) -> Result<Self, AmountError> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        if text.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let (whole, frac) = match text.find('.') {
            Some(dot) => (&text[..dot], Some((dot + 1, &text[dot + 1..]))),
            None => (text, None),
        };
        check_digits(whole, 0)?;
        if let Some((offset, frac)) = frac {
            check_digits(frac, offset)?;
            if whole.is_empty() || frac.is_empty() {
                return Err(AmountError::MissingDigits);
            }
            if frac.len() > DECIMALS {
                return Err(AmountError::TooManyDecimals(frac.len()));
            }
        }
        let mut value = digits_value(whole)?
            .checked_mul(WEI_PER_BTT)
            .ok_or(AmountError::Overflow)?;
        if let Some((_, frac)) = frac {
            // Scale the fraction to 18 digits: "5" -> 5 × 10¹⁷. At most 18 digits: no overflow.
            let scale = U256::from(10u64).pow(U256::from(DECIMALS - frac.len()));
            value = value
                .checked_add(digits_value(frac)? * scale)
                .ok_or(AmountError::Overflow)?;
        }
        Ok(Self(value))
    }

    /// Formats as decimal BTT without trailing zeros: `"1.5"`, `"0.000000000000000001"`, `"2"`.
    pub fn to_btt_string(self) -> String {
        let whole = self.0 / WEI_PER_BTT;
        let frac = self.0 % WEI_PER_BTT;
        if frac.is_zero() {
            return whole.to_string();
        }
        let frac = format!("{:0>width$}", frac.to_string(), width = DECIMALS);
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// Refuses anything but ASCII digits; `offset` locates the error in the whole text.
fn check_digits(digits: &str, offset: usize) -> Result<(), AmountError> {
    match digits.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, found)) => Err(AmountError::InvalidCharacter {
            found,
            position: offset + i,
        }),
        None => Ok(()),
    }
}

/// The value of an ASCII digit string (already checked).
fn digits_value(digits: &str) -> Result<U256, AmountError> {
    let ten = U256::from(10u64);
    digits.bytes().try_fold(U256::ZERO, |value, b| {
        value
            .checked_mul(ten)
            .and_then(|v| v.checked_add(U256::from(b - b'0')))
            .ok_or(AmountError::Overflow)
    })
}

impl From<U256> for Wei {
    fn from(v: U256) -> Self {
        Self(v)
    }
}

impl From<Wei> for U256 {
    fn from(v: Wei) -> Self {
        v.0
    }
}

/// Shows decimal BTT with the unit, e.g. `1.5 BTT`.
impl fmt::Display for Wei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} BTT", self.to_btt_string())
    }
}
