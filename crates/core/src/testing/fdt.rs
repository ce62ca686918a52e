//! An editable device tree for tests: decode a blob (a real board's, or
//! one QEMU dumped), change nodes and properties, or build one from
//! nothing, and encode it again as a flattened device tree (version 17).
//!
//! Owns: the tree-to-blob and blob-to-tree conversions tests use to make
//! machines no emulator gives as they are (a 16550 named by
//! `stdout-path`, split redistributor regions, corrupted copies).
//! Must never: be used by the kernel to read a device tree (`dtb` does that,
//! validating first); decoding here panics on a bad blob, as a test should.

use alloc::string::String;
use alloc::vec::Vec;

use fdt::Fdt;
use fdt::node::FdtNode;

use crate::dtb::validate::{self, FDT_MAGIC};

/// A device-tree node: its name (`serial@14c33b00`; the root's is empty),
/// its properties in order, and its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<Node>,
}

/// Big-endian 32-bit cells, as `reg`, `interrupts` and friends hold them.
pub fn cells(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// A NUL-terminated string property (`compatible = "ns16550a"`).
pub fn string(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

impl Node {
    /// An empty node named `name`.
    pub fn new(name: &str) -> Node {
        Node { name: name.into(), props: Vec::new(), children: Vec::new() }
    }

    /// This node with property `prop` set to `value` (builder form).
    pub fn with(mut self, prop: &str, value: Vec<u8>) -> Node {
        self.set(prop, value);
        self
    }

    /// This node with `child` appended (builder form).
    pub fn with_child(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }

    /// Decodes `blob` into its memory reservations and its root node.
    ///
    /// # Panics
    /// When `blob` is not a well-formed device tree.
    pub fn decode(blob: &[u8]) -> (Vec<(u64, u64)>, Node) {
        let canonical = validate::normalize(blob).expect("a well-formed device tree");
        let fdt = Fdt::new(&canonical).expect("a device tree the fdt crate reads");
        fn walk(n: FdtNode<'_, '_>) -> Node {
            Node {
                name: n.name.into(),
                props: n.properties().map(|p| (p.name.into(), p.value.to_vec())).collect(),
                children: n.children().map(walk).collect(),
            }
        }
        let rsv = fdt.memory_reservations().map(|r| (r.address() as u64, r.size() as u64)).collect();
        (rsv, walk(fdt.find_node("/").expect("a root node")))
    }

    /// Encodes this node as the root of a device tree with the memory
    /// reservations `reservations`.
    pub fn encode(&self, reservations: &[(u64, u64)]) -> Vec<u8> {
        const BEGIN_NODE: u32 = 1;
        const END_NODE: u32 = 2;
        const PROP: u32 = 3;
        const END: u32 = 9;
        let mut strings: Vec<u8> = Vec::new();
        let mut structure: Vec<u8> = Vec::new();
        fn align(s: &mut Vec<u8>) {
            s.resize((s.len() + 3) & !3, 0);
        }
        fn emit(n: &Node, s: &mut Vec<u8>, strings: &mut Vec<u8>) {
            s.extend(BEGIN_NODE.to_be_bytes());
            s.extend(n.name.as_bytes());
            s.push(0);
            align(s);
            for (name, value) in &n.props {
                let off = strings.len() as u32;
                strings.extend(name.as_bytes());
                strings.push(0);
                s.extend(PROP.to_be_bytes());
                s.extend((value.len() as u32).to_be_bytes());
                s.extend(off.to_be_bytes());
                s.extend(value);
                align(s);
            }
            for c in &n.children {
                emit(c, s, strings);
            }
            s.extend(END_NODE.to_be_bytes());
        }
        emit(self, &mut structure, &mut strings);
        structure.extend(END.to_be_bytes());
        let off_rsv = 40;
        let off_struct = off_rsv + (reservations.len() + 1) * 16;
        let off_strings = off_struct + structure.len();
        let total = off_strings + strings.len();
        let mut out = Vec::new();
        for w in [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsv as u32,
            17,
            16,
            0,
            strings.len() as u32,
            structure.len() as u32,
        ] {
            out.extend(w.to_be_bytes());
        }
        for (a, s) in reservations.iter().chain([&(0, 0)]) {
            out.extend(a.to_be_bytes());
            out.extend(s.to_be_bytes());
        }
        out.extend(structure);
        out.extend(strings);
        out
    }

    /// The child named `name`.
    ///
    /// # Panics
    /// When there is none.
    pub fn child(&mut self, name: &str) -> &mut Node {
        let at = self.children.iter().position(|c| c.name == name);
        &mut self.children[at.unwrap_or_else(|| panic!("no child node {name}"))]
    }

    /// The first node below this one (this one included) that `pred` picks.
    pub fn find(&mut self, pred: &dyn Fn(&Node) -> bool) -> Option<&mut Node> {
        if pred(self) {
            return Some(self);
        }
        self.children.iter_mut().find_map(|c| c.find(pred))
    }

    /// Property `prop`'s value, if the node has it.
    pub fn get(&self, prop: &str) -> Option<&[u8]> {
        self.props.iter().find(|(n, _)| n == prop).map(|(_, v)| v.as_slice())
    }

    /// Whether `compatible` lists `name`.
    pub fn is_compatible(&self, name: &str) -> bool {
        self.get("compatible").is_some_and(|v| v.split(|&b| b == 0).any(|c| c == name.as_bytes()))
    }

    /// Sets property `prop` to `value`, adding it when absent.
    pub fn set(&mut self, prop: &str, value: Vec<u8>) {
        match self.props.iter_mut().find(|(n, _)| n == prop) {
            Some((_, v)) => *v = value,
            None => self.props.push((prop.into(), value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtb::discover;

    #[test]
    fn a_built_tree_encodes_and_decodes_to_itself() {
        let root = Node::new("")
            .with("#address-cells", cells(&[2]))
            .with("#size-cells", cells(&[2]))
            .with_child(
                Node::new("memory@40000000")
                    .with("device_type", string("memory"))
                    .with("reg", cells(&[0, 0x4000_0000, 0, 0x1000_0000])),
            )
            .with_child(Node::new("chosen").with("bootargs", string("ktest")));
        let blob = root.encode(&[(0x4000_0000, 0x1000)]);
        let (rsv, back) = Node::decode(&blob);
        assert_eq!(rsv, [(0x4000_0000, 0x1000)]);
        assert_eq!(back, root);
        assert!(back.clone().child("memory@40000000").get("device_type") == Some(&b"memory\0"[..]));
        // The kernel's own reader accepts it and sees the bank.
        let machine = discover(&blob).unwrap();
        assert_eq!(machine.memory.len(), 1);
    }
}
