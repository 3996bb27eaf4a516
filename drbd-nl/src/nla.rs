//! The only code that knows about DRBD's mandatory flag (bit 14) and the
//! nesting of attribute sets inside top-level attributes.
//!
//! DRBD 8.4 marks some fields with `DRBD_GENLA_F_MANDATORY` (`1 << 14`), the
//! same bit as `NLA_F_NET_BYTEORDER`; it does not mean network byte order.
//! Decoders use `type & 0x3FFF` ([`NlaBuffer::kind`] masks exactly that);
//! encoders OR the bit onto the fields marked M in `drbd_genl.h`.

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator, Parseable, NLA_F_NESTED,
};

/// `DRBD_GENLA_F_MANDATORY`: bit 14 of an attribute type.
pub const DRBD_GENLA_F_MANDATORY: u16 = 1 << 14;

/// A field of a DRBD attribute set.
pub trait Field: Nla + for<'a> Parseable<NlaBuffer<&'a [u8]>> {
    /// Whether `drbd_genl.h` marks this field mandatory (bit 14 on the wire).
    fn mandatory(&self) -> bool;
}

/// The field number of a DRBD field: the type without NESTED and bit 14.
pub(crate) fn field_kind<T: AsRef<[u8]> + ?Sized>(buf: &NlaBuffer<&T>) -> u16 {
    buf.kind()
}

/// Parses a `__str_field`: bytes up to the first NUL (the kernel sends one).
pub(crate) fn parse_str(payload: &[u8]) -> Result<String, DecodeError> {
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(payload.len());
    let bytes = payload.get(..end).unwrap_or(payload);
    String::from_utf8(bytes.to_vec()).map_err(DecodeError::from)
}

/// Emits a `__str_field`: the bytes and a NUL.
pub(crate) fn emit_str(buffer: &mut [u8], value: &str) {
    let bytes = value.as_bytes();
    if let Some(dst) = buffer.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    if let Some(nul) = buffer.get_mut(bytes.len()) {
        *nul = 0;
    }
}

/// Parses a `__flg_field`: one byte, 0 or non-zero (NLA_U8, not NLA_FLAG).
pub(crate) fn parse_flag(payload: &[u8]) -> Result<bool, DecodeError> {
    match payload {
        [b] => Ok(*b != 0),
        _ => Err(DecodeError::from(format!(
            "flag field must be 1 byte, got {}",
            payload.len()
        ))),
    }
}

/// One attribute set (a C struct of `drbd_genl.h`) as carried in a top-level
/// attribute: its fields plus the two flag bits that decide its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrSet<T> {
    /// The fields, in wire order.
    pub fields: Vec<T>,
    /// Whether the top-level attribute carries `NLA_F_NESTED`. Requests need it
    /// (the kernel validates strictly); the kernel omits it on CFG_CONTEXT,
    /// STATE_INFO and CFG_REPLY.
    pub nested_flag: bool,
    /// Whether mandatory fields carry bit 14. Requests set it; the kernel's
    /// generated `*_to_skb` writers do not.
    pub mandatory_flag: bool,
}

impl<T> AttrSet<T> {
    /// A set as a request sends it: `NLA_F_NESTED` and bit 14 on mandatory fields.
    pub fn new(fields: Vec<T>) -> Self {
        Self {
            fields,
            nested_flag: true,
            mandatory_flag: true,
        }
    }

    /// The fields.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.fields.iter()
    }
}

impl<T> From<Vec<T>> for AttrSet<T> {
    fn from(fields: Vec<T>) -> Self {
        Self::new(fields)
    }
}

impl<'a, T> IntoIterator for &'a AttrSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// Writes the exact 16-bit type of an emitted attribute. netlink-packet-core's
/// emitter sets `NLA_F_NESTED` by re-masking the type, which drops bit 14 when
/// both are set (found by the `decode_message` fuzz target), so the type we
/// computed is written again afterwards.
pub(crate) fn write_exact_kind(nla: &mut [u8], kind: u16) {
    if let Some(t) = nla.get_mut(2..4) {
        t.copy_from_slice(&kind.to_ne_bytes());
    }
}

/// Emits top-level attributes one after the other, each with its exact type
/// (see [`write_exact_kind`]): the attribute part of every DRBD message.
pub(crate) fn emit_tlas<A: Nla>(buffer: &mut [u8], attrs: &[A]) {
    let mut start = 0;
    for attr in attrs {
        let end = start + attr.buffer_len();
        if let Some(dst) = buffer.get_mut(start..end) {
            attr.emit(dst);
            write_exact_kind(dst, attr.kind());
        }
        start = end;
    }
}

/// A field with its wire type decided (number, maybe bit 14).
struct Flagged<'a, T>(&'a T, bool);

impl<T: Field> Nla for Flagged<'_, T> {
    fn value_len(&self) -> usize {
        self.0.value_len()
    }
    fn kind(&self) -> u16 {
        if self.1 && self.0.mandatory() {
            self.0.kind() | DRBD_GENLA_F_MANDATORY
        } else {
            self.0.kind()
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        self.0.emit_value(buffer)
    }
}

impl<T: Field> AttrSet<T> {
    pub(crate) fn tla_kind(&self, number: u16) -> u16 {
        if self.nested_flag {
            number | NLA_F_NESTED
        } else {
            number
        }
    }

    pub(crate) fn value_len(&self) -> usize {
        self.fields
            .iter()
            .map(|f| Flagged(f, false).buffer_len())
            .sum()
    }

    pub(crate) fn emit_fields(&self, buffer: &mut [u8]) {
        let mut start = 0;
        for field in &self.fields {
            let flagged = Flagged(field, self.mandatory_flag);
            let end = start + flagged.buffer_len();
            // invariant: buffer is value_len() long, the sum of these lengths.
            if let Some(dst) = buffer.get_mut(start..end) {
                flagged.emit(dst);
                write_exact_kind(dst, flagged.kind());
            }
            start = end;
        }
    }

    pub(crate) fn parse_tla<B: AsRef<[u8]> + ?Sized>(
        buf: &NlaBuffer<&B>,
    ) -> Result<Self, DecodeError> {
        let mut fields = Vec::new();
        let mut mandatory_flag = false;
        for nla in NlasIterator::new(buf.value()) {
            let nla = nla.context("invalid DRBD field")?;
            mandatory_flag |= nla.network_byte_order_flag();
            fields.push(T::parse(&nla)?);
        }
        // The flag only matters for fields marked M; a set without any is
        // the same bytes either way, so keep the request default.
        let mandatory_flag = mandatory_flag || !fields.iter().any(Field::mandatory);
        Ok(Self {
            fields,
            nested_flag: buf.nested_flag(),
            mandatory_flag,
        })
    }
}
