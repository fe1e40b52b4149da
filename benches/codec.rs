//! DATA codec throughput: decoding (unstuffing, strict CRLF, size limit) and
//! re-stuffing for the upstream, in MB/s over realistic message bodies.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smtpgate::smtp::codec::{stuff_into, DataDecoder, DataStatus};
use std::hint::black_box;

/// A dot-stuffed wire message of about `size` octets with 76-column lines,
/// some starting with a dot, ending with CRLF.CRLF.
fn wire_message(size: usize) -> Vec<u8> {
    let mut wire = b"From: a@example.test\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n".to_vec();
    let mut i = 0;
    while wire.len() < size {
        if i % 40 == 0 {
            wire.extend_from_slice(b"..a line that starts with a dot\r\n");
        } else {
            wire.extend_from_slice(
                b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n",
            );
        }
        i += 1;
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("data_decode");
    for size in [4 * 1024, 100 * 1024, 4 * 1024 * 1024] {
        let wire = wire_message(size);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
            b.iter(|| {
                let mut d = DataDecoder::new(32 * 1024 * 1024);
                // Fed in 64 KB reads, as the session does.
                for chunk in wire.chunks(64 * 1024) {
                    if let Ok(DataStatus::Done(_)) = d.feed(black_box(chunk)) {
                        break;
                    }
                }
                black_box(d.into_message().len())
            })
        });
    }
    group.finish();
}

fn stuff(c: &mut Criterion) {
    let mut group = c.benchmark_group("data_stuff");
    for size in [4 * 1024, 4 * 1024 * 1024] {
        let wire = wire_message(size);
        let mut d = DataDecoder::new(usize::MAX);
        let _ = d.feed(&wire);
        let message = d.into_message();
        group.throughput(Throughput::Bytes(message.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &message, |b, message| {
            let mut out = Vec::with_capacity(message.len() + 1024);
            b.iter(|| {
                out.clear();
                stuff_into(black_box(message), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, stuff);
criterion_main!(benches);
