//! The dense encoding: 16384 registers of 6 bits, packed from each byte's least significant
//! bit upwards (register 0 is the low 6 bits of byte 0).

use crate::{REGISTER_MAX, REGISTERS};

/// The value of register `index` in the packed `registers`.
pub(crate) fn get(registers: &[u8], index: usize) -> u8 {
    let byte = index * 6 / 8;
    let shift = (index * 6) & 7;
    let low = u16::from(registers[byte]) >> shift;
    // The last register ends exactly at the last byte; the byte after it adds no bits.
    let high = registers
        .get(byte + 1)
        .map_or(0, |&b| u16::from(b) << (8 - shift));
    ((low | high) & u16::from(REGISTER_MAX)) as u8
}

/// Sets register `index` in the packed `registers` to `value` (at most 63).
pub(crate) fn set(registers: &mut [u8], index: usize, value: u8) {
    let byte = index * 6 / 8;
    let shift = (index * 6) & 7;
    let value = u16::from(value & REGISTER_MAX);
    let mask = u16::from(REGISTER_MAX) << shift;
    registers[byte] = ((u16::from(registers[byte]) & !mask) | (value << shift)) as u8;
    if let Some(next) = registers.get_mut(byte + 1) {
        let spill = 8 - shift;
        let high_mask = u16::from(REGISTER_MAX) >> spill;
        *next = ((u16::from(*next) & !high_mask) | (value >> spill)) as u8;
    }
}

/// Raises register `index` to `count` if it is lower; true if it changed.
pub(crate) fn raise(registers: &mut [u8], index: usize, count: u8) -> bool {
    if count > get(registers, index) {
        set(registers, index, count);
        true
    } else {
        false
    }
}

/// Adds how many registers hold each value to `histogram`.
pub(crate) fn histogram(registers: &[u8], histogram: &mut [u32; 64]) {
    // Three bytes hold four registers.
    for triple in registers.chunks_exact(3) {
        let (b0, b1, b2) = (triple[0], triple[1], triple[2]);
        histogram[usize::from(b0 & 63)] += 1;
        histogram[usize::from((b0 >> 6 | b1 << 2) & 63)] += 1;
        histogram[usize::from((b1 >> 4 | b2 << 4) & 63)] += 1;
        histogram[usize::from(b2 >> 2)] += 1;
    }
}

/// Raises each of `max`'s registers to the dense register's value where that is higher.
pub(crate) fn merge_into(registers: &[u8], max: &mut [u8; REGISTERS]) {
    for (chunk, out) in registers.chunks_exact(3).zip(max.chunks_exact_mut(4)) {
        let (b0, b1, b2) = (chunk[0], chunk[1], chunk[2]);
        let values = [
            b0 & 63,
            (b0 >> 6 | b1 << 2) & 63,
            (b1 >> 4 | b2 << 4) & 63,
            b2 >> 2,
        ];
        for (slot, value) in out.iter_mut().zip(values) {
            *slot = (*slot).max(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DENSE_REGISTER_BYTES;

    #[test]
    fn registers_keep_their_values_and_leave_neighbours_alone() {
        let mut registers = vec![0u8; DENSE_REGISTER_BYTES];
        let mut expected = vec![0u8; REGISTERS];
        let mut state = 12345u32;
        for (index, slot) in expected.iter_mut().enumerate() {
            state = state.wrapping_mul(1103515245).wrapping_add(12345);
            let value = (state >> 16) as u8 & REGISTER_MAX;
            set(&mut registers, index, value);
            *slot = value;
        }
        for (index, &value) in expected.iter().enumerate() {
            assert_eq!(get(&registers, index), value, "register {index}");
        }
        let mut histo = [0u32; 64];
        histogram(&registers, &mut histo);
        for value in 0..64u8 {
            let n = expected.iter().filter(|&&v| v == value).count() as u32;
            assert_eq!(histo[usize::from(value)], n);
        }
    }
}
