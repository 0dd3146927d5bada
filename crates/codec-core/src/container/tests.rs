use super::*;

fn sample() -> Packed {
    Packed {
        model: "m".into(),
        tensors: vec![
            Value::Bytes(vec![b"ab".to_vec()]),
            Value::Int64(vec![3, 300]),
        ],
        weights_id: None,
        rd_parameter: None,
    }
}

/// The field numbers of example.proto / feature.proto, checked byte by byte on a hand-assembled message.
#[test]
fn bytes_follow_the_tf_example_field_numbers() {
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0x0a, 53,                         // Example.features (field 1, LEN)
        0x0a, 11,                         //  Features.feature map entry (field 1, LEN)
        0x0a, 1, 0x01,                    //   key (field 1) = "\x01"
        0x12, 6,                          //   value (field 2) = Feature
        0x0a, 4,                          //    Feature.bytes_list (field 1)
        0x0a, 2, b'a', b'b',              //     BytesList.value (field 1)
        0x0a, 12,
        0x0a, 1, 0x02,
        0x12, 7,
        0x1a, 5,                          //    Feature.int64_list (field 3)
        0x0a, 3, 0x03, 0xac, 0x02,        //     Int64List.value, packed varints 3, 300
        0x0a, 11,
        0x0a, 2, b'F', b'V',
        0x12, 5, 0x1a, 3, 0x0a, 1, 0x01,  //   format version 1
        0x0a, 11,
        0x0a, 2, b'M', b'D',
        0x12, 5, 0x0a, 3, 0x0a, 1, b'm',  //   model name
    ];
    assert_eq!(encode(sample().features()), expected);
}

/// `to_bytes` adds exactly one entry, `"CK"` = CRC-32C of the bytes above, in key order.
#[test]
fn checksum_entry_covers_the_rest() {
    let rest = encode(sample().features());
    let crc = crc::crc32c(&rest);
    let mut entry = vec![b'C', b'K', 0x12];
    let mut varint = Vec::new();
    prost::encoding::encode_varint(u64::from(crc), &mut varint);
    // Feature.int64_list (0x1a) holding a packed Int64List (0x0a) of one varint.
    entry.push(4 + varint.len() as u8);
    entry.extend([0x1a, 2 + varint.len() as u8, 0x0a, varint.len() as u8]);
    entry.extend(&varint);
    let bytes = sample().to_bytes();
    assert!(bytes.windows(entry.len()).any(|w| w == entry.as_slice()));
    assert_eq!(bytes.len(), rest.len() + 2 + 2 + entry.len());
}

/// A changed byte anywhere that still parses is refused by the checksum; a file without "CK"
/// (TFC's own, older tfci-rs) is read as it is.
#[test]
fn corruption_is_refused_and_files_without_checksum_parse() {
    let p = Packed {
        tensors: vec![
            Value::Bytes(vec![vec![7u8; 40]]),
            Value::Int64(vec![3, 300]),
        ],
        ..sample()
    };
    let bytes = p.to_bytes();
    let mut refused = 0;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        match Packed::from_bytes(&b) {
            Ok(q) => assert_eq!(q, p, "byte {i} changed the contents undetected"),
            Err(ContainerError::Checksum { .. }) => refused += 1,
            Err(_) => {}
        }
    }
    assert!(refused > 40, "{refused}");
    assert_eq!(Packed::from_bytes(&encode(p.features())).expect("no CK"), p);
}

#[test]
fn float_list_is_field_2_packed() {
    let p = Packed {
        rd_parameter: Some(1.5),
        ..sample()
    };
    let bytes = p.to_bytes();
    // "RD" entry: key, then Feature.float_list (0x12) holding a packed FloatList of one f32.
    let mut rd = vec![0x0a, 2, b'R', b'D', 0x12, 8, 0x12, 6, 0x0a, 4];
    rd.extend_from_slice(&1.5f32.to_le_bytes());
    assert!(
        bytes.windows(rd.len()).any(|w| w == rd.as_slice()),
        "no packed float_list entry for RD"
    );
}

#[test]
fn round_trip() {
    let p = Packed {
        model: "mbt2018-mean-msssim-5".into(),
        tensors: vec![
            Value::Bytes(vec![vec![1, 2, 3]]),
            Value::Bytes(vec![vec![]]),
            Value::Int64(vec![512, 768]),
            Value::Int64(vec![32, 48]),
            Value::Int64(vec![8, 12]),
        ],
        weights_id: Some("0123456789abcdef".into()),
        rd_parameter: Some(4.25),
    };
    let back = Packed::from_bytes(&p.to_bytes()).expect("parses");
    assert_eq!(back, p);
    assert_eq!(back.shape_at(2, 2).expect("shape"), &[512, 768]);
    assert!(matches!(
        back.shape_at(0, 2),
        Err(ContainerError::WrongType { .. })
    ));
    assert!(matches!(
        back.bytes_at(7),
        Err(ContainerError::Missing { .. })
    ));
}

#[test]
fn unpacked_int64_is_accepted() {
    // proto3 parsers must accept the unpacked encoding too (what some writers emit).
    let mut b = sample().to_bytes();
    // Replace the packed "\x02" list with an unpacked one: two (field 1, varint) records.
    let packed = [
        0x0a, 12, 0x0a, 1, 0x02, 0x12, 7, 0x1a, 5, 0x0a, 3, 0x03, 0xac, 0x02,
    ];
    let unpacked = [
        0x0a, 12, 0x0a, 1, 0x02, 0x12, 7, 0x1a, 5, 0x08, 0x03, 0x08, 0xac, 0x02,
    ];
    let pos = b
        .windows(packed.len())
        .position(|w| w == packed)
        .expect("entry present");
    b.splice(pos..pos + packed.len(), unpacked);
    let back = Packed::from_bytes(&b).expect("parses");
    assert_eq!(back.shape_at(1, 2).expect("shape"), &[3, 300]);
}

#[test]
fn errors_are_typed() {
    assert!(matches!(
        Packed::from_bytes(&[0xff, 0xff, 0xff]),
        Err(ContainerError::NotExample(_))
    ));
    assert!(matches!(
        Packed::from_bytes(&[]),
        Err(ContainerError::NoModel)
    ));
    let mut p = sample();
    p.model = String::new();
    // An empty model name still parses as a name; the codec rejects it as unknown.
    assert_eq!(Packed::from_bytes(&p.to_bytes()).expect("parses").model, "");
    let mut bad = Example::decode(sample().to_bytes().as_slice()).expect("decodes");
    bad.features.as_mut().expect("features").feature.insert(
        KEY_FORMAT_VERSION.into(),
        Value::Int64(vec![99]).into_feature(),
    );
    assert!(matches!(
        Packed::from_bytes(&bad.encode_to_vec()),
        Err(ContainerError::Version(99))
    ));
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_valid_message() {
    let bytes = Packed {
        weights_id: Some("w".into()),
        ..sample()
    }
    .to_bytes();
    for cut in 0..bytes.len() {
        // Must never panic; a cut inside any field is a decode error, and the outer length prefix
        // makes every proper prefix fail.
        assert!(
            Packed::from_bytes(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes parsed"
        );
    }
}
