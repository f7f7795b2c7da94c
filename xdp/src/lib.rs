//! `xdp`: everything of bypass that touches the kernel's XDP.
//!
//! For now: the steering program (bpf/steer.bpf.c), compiled by build.rs.
//! Loading and attaching it come next.

/// The compiled steering program, an ELF BPF object.
pub static STEER_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));

#[cfg(test)]
mod tests {
    #[test]
    fn the_object_is_bpf_elf() {
        let o = super::STEER_OBJECT;
        assert_eq!(&o[..4], b"\x7fELF");
        // e_machine (little endian) at offset 18: EM_BPF = 247
        assert_eq!(u16::from_le_bytes([o[18], o[19]]), 247);
    }
}
