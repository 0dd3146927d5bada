//! The files the codec writes are TFC `PackedTensors` examples: read them back with the raw protobuf
//! structs, not the codec's own reader.

use codec_core::container::{Example, Kind};
use codec_core::Limits;
use prost::Message;
use tfci_tests::{Fixture, ARCHITECTURES};

#[test]
fn files_are_tf_examples_in_tfc_tensor_order() {
    for arch in ARCHITECTURES {
        let f = Fixture::load(arch);
        let bytes = f
            .codec
            .compress(&f.image, f.level, &Limits::default())
            .expect("compress");
        let ex = Example::decode(bytes.as_slice()).expect("a tf.train.Example");
        let map = ex.features.expect("features").feature;
        let kind = |k: &str| {
            map.get(k)
                .and_then(|v| v.kind.clone())
                .unwrap_or_else(|| panic!("{arch}: no {k:?}"))
        };
        match kind("MD") {
            Kind::BytesList(l) => assert_eq!(l.value, vec![f.model_name().into_bytes()]),
            other => panic!("{arch}: MD is {other:?}"),
        }
        let hyper = f.codec.family().architecture.has_hyperprior();
        let (w, h) = (f.image.width as i64, f.image.height as i64);
        let (yh, yw) = ((h + 15) / 16, (w + 15) / 16);
        let strings = if hyper { 2 } else { 1 };
        let mut expected_shapes = vec![vec![h, w], vec![yh, yw]];
        if hyper {
            expected_shapes.push(vec![(yh + 3) / 4, (yw + 3) / 4]);
        }
        for i in 0..strings {
            let key = char::from(1 + i as u8).to_string();
            assert!(
                matches!(kind(&key), Kind::BytesList(l) if l.value.len() == 1),
                "{arch}: {key:?} is a string"
            );
        }
        for (j, shape) in expected_shapes.iter().enumerate() {
            let key = char::from(1 + (strings + j) as u8).to_string();
            match kind(&key) {
                Kind::Int64List(l) => assert_eq!(&l.value, shape, "{arch}: {key:?}"),
                other => panic!("{arch}: {key:?} is {other:?}"),
            }
        }
        let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let positional = strings + expected_shapes.len();
        let mut expected: Vec<String> = (1..=positional)
            .map(|i| char::from(i as u8).to_string())
            .collect();
        expected.extend(["CK", "FV", "MD", "WI"].map(String::from));
        assert_eq!(keys, expected, "{arch}: feature keys");
        match kind("WI") {
            Kind::BytesList(l) => assert_eq!(
                l.value,
                vec![f.codec.family().weights_id.clone().into_bytes()]
            ),
            other => panic!("{arch}: WI is {other:?}"),
        }
    }
}
