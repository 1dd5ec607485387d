//! Framing: the connection intro (optional edge routing + `WA` header) and 3-byte
//! big-endian length-prefixed frames, decoded from bytes split anywhere.

/// The connection header: "WA", protocol 6, dictionary version 3.
pub const HEADER: [u8; 4] = [0x57, 0x41, 6, 3];
/// The dictionary version wasp speaks.
pub const DICT_VERSION: u8 = 3;
/// Frames are capped at 16 MiB; a larger declared length is a protocol error.
pub const MAX_FRAME: usize = 1 << 24;
/// The buffer a decoder keeps between frames: one large frame's room is given back once it
/// has been read, so a single 16 MiB message does not cost 16 MiB for the connection's life.
pub const KEPT_CAPACITY: usize = 64 * 1024;

/// Why bytes could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame (or routing block) declared or carried more bytes than the limit allows.
    #[error("frame of {0} bytes is over the 16 MiB limit")]
    TooLarge(usize),
    /// The connection did not start with `WA` (or `ED` routing then `WA`).
    #[error("connection header is not \"WA\" (got {0:02x?})")]
    BadHeader([u8; 2]),
    /// The header names token dictionaries other than version 3 (e.g. 2, older clients).
    #[error("dictionary version {0} is not supported (only version 3)")]
    UnsupportedVersion(u8),
    /// `ED` was not followed by the bytes 0, 1.
    #[error("edge routing prefix is malformed")]
    BadRouting,
}

/// Appends one frame (3-byte length, then `payload`) to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() >= MAX_FRAME {
        return Err(FrameError::TooLarge(payload.len()));
    }
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    Ok(())
}

/// The bytes a client sends before its first frame: the optional edge-routing prefix
/// (`"ED", 0, 1, 3-byte length, routing bytes`) then the header. Routing bytes too long
/// for a 3-byte length (16 MiB or more, never seen in practice) are left out rather than
/// sent truncated: the server then routes the connection itself.
pub fn client_intro(routing: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + routing.map_or(0, |r| r.len() + 7));
    if let Some(routing) = routing.filter(|r| r.len() < MAX_FRAME) {
        out.extend_from_slice(b"ED\x00\x01");
        out.extend_from_slice(&(routing.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(routing);
    }
    out.extend_from_slice(&HEADER);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intro {
    /// Client side, or intro already read.
    Done,
    /// Server side: expects optional routing then the header.
    Expected,
}

/// Reassembles frames from bytes that may be split anywhere.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed (compacted lazily to avoid quadratic shifting).
    start: usize,
    intro: Intro,
    limit: usize,
    /// The edge-routing bytes of the client's `ED` prefix, once read (server side).
    routing: Option<Vec<u8>>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder for frames only (the client side).
    pub fn new() -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            intro: Intro::Done,
            limit: MAX_FRAME,
            routing: None,
        }
    }

    /// Lowers the frame size limit (a 3-byte length can never exceed 16 MiB - 1, so the
    /// default limit only matters for callers that want a tighter one).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.min(MAX_FRAME);
        self
    }

    /// A decoder that first reads the client's intro (the server side).
    pub fn server() -> Self {
        FrameDecoder {
            intro: Intro::Expected,
            ..Self::new()
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
            self.give_back();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Shrinks the buffer to `KEPT_CAPACITY` (or what it still holds) after a large frame.
    fn give_back(&mut self) {
        if self.buf.capacity() > KEPT_CAPACITY {
            self.buf.shrink_to(self.buf.len().max(KEPT_CAPACITY));
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The routing bytes of the client's `ED` prefix, when its intro had one.
    pub fn routing(&self) -> Option<&[u8]> {
        self.routing.as_deref()
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn read_intro(&mut self) -> Result<bool, FrameError> {
        let data = self.pending();
        let mut at = 0;
        let mut routing = None;
        if data.len() < 2 {
            return Ok(false);
        }
        if &data[..2] == b"ED" {
            if data.len() < 7 {
                return Ok(false);
            }
            if data[2] != 0 || data[3] != 1 {
                return Err(FrameError::BadRouting);
            }
            let len = usize::from(data[4]) << 16 | usize::from(data[5]) << 8 | usize::from(data[6]);
            if len >= MAX_FRAME {
                return Err(FrameError::TooLarge(len));
            }
            if data.len() < 7 + len {
                return Ok(false);
            }
            at = 7 + len;
            routing = Some(data[7..at].to_vec());
        }
        let rest = &data[at..];
        if rest.len() < 2 {
            return Ok(false);
        }
        if &rest[..2] != b"WA" {
            return Err(FrameError::BadHeader([rest[0], rest[1]]));
        }
        if rest.len() < 4 {
            return Ok(false);
        }
        if rest[3] != DICT_VERSION {
            return Err(FrameError::UnsupportedVersion(rest[3]));
        }
        self.start += at + 4;
        self.intro = Intro::Done;
        self.routing = routing;
        Ok(true)
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.intro == Intro::Expected && !self.read_intro()? {
            return Ok(None);
        }
        let data = self.pending();
        if data.len() < 3 {
            return Ok(None);
        }
        let len = usize::from(data[0]) << 16 | usize::from(data[1]) << 8 | usize::from(data[2]);
        if len >= self.limit {
            return Err(FrameError::TooLarge(len));
        }
        if data.len() < 3 + len {
            return Ok(None);
        }
        let frame = data[3..3 + len].to_vec();
        self.start += 3 + len;
        if self.start == self.buf.len() {
            // Everything read: give the room back (an idle connection holds no buffer; the
            // next read allocates, as each frame it returns does anyway).
            self.buf = Vec::new();
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            encode_frame(f, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn a_large_frame_s_room_is_given_back_once_read() {
        let big = vec![7u8; MAX_FRAME - 1];
        let small = vec![1u8; 10];
        // Read alone: nothing at all is kept past the frame.
        let mut dec = FrameDecoder::new();
        dec.push(&stream(std::slice::from_ref(&big)));
        assert_eq!(dec.next_frame().unwrap().unwrap().len(), big.len());
        assert_eq!(dec.buf.capacity(), 0);
        // Followed by the start of another frame in the same read: given back at the next push.
        let mut dec = FrameDecoder::new();
        let mut bytes = stream(&[big.clone(), small.clone()]);
        bytes.truncate(bytes.len() - 4);
        dec.push(&bytes);
        assert_eq!(dec.next_frame().unwrap().unwrap().len(), big.len());
        assert_eq!(dec.next_frame().unwrap(), None);
        dec.push(&[1, 1, 1, 1]);
        assert!(
            dec.buf.capacity() <= KEPT_CAPACITY,
            "{}",
            dec.buf.capacity()
        );
        assert_eq!(dec.next_frame().unwrap().unwrap(), small);
    }

    fn drain(dec: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while let Some(f) = dec.next_frame().unwrap() {
            got.push(f);
        }
        got
    }

    proptest! {
        #[test]
        fn frames_survive_any_split(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let bytes = stream(&frames);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut dec = FrameDecoder::new();
            let mut got = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                dec.push(&bytes[last..p]);
                last = p;
                got.extend(drain(&mut dec));
            }
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn server_streams_with_routing_survive_any_split(
            routing in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut bytes = client_intro(routing.as_deref());
            bytes.extend(stream(&frames));
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut dec = FrameDecoder::server();
            let mut got = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                dec.push(&bytes[last..p]);
                last = p;
                got.extend(drain(&mut dec));
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(dec.buffered(), 0);
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            chunk in 1usize..17,
            server in any::<bool>(),
        ) {
            let mut dec = if server { FrameDecoder::server() } else { FrameDecoder::new() };
            'feed: for piece in bytes.chunks(chunk) {
                dec.push(piece);
                loop {
                    match dec.next_frame() {
                        Ok(Some(frame)) => prop_assert!(frame.len() < MAX_FRAME),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    #[test]
    fn many_small_frames_in_one_push_come_out_in_order() {
        let frames: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut dec = FrameDecoder::new();
        dec.push(&stream(&frames));
        assert_eq!(drain(&mut dec), frames);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn client_intro_is_header_or_routing_then_header() {
        assert_eq!(client_intro(None), HEADER);
        assert_eq!(
            client_intro(Some(&[0xab, 0xcd])),
            [b'E', b'D', 0, 1, 0, 0, 2, 0xab, 0xcd, 0x57, 0x41, 6, 3]
        );
    }

    #[test]
    fn every_single_split_point_of_a_server_stream() {
        let frames = vec![b"hello".to_vec(), Vec::new(), vec![7; 1000]];
        let mut bytes = client_intro(Some(b"route"));
        bytes.extend(stream(&frames));
        for cut in 0..=bytes.len() {
            let mut dec = FrameDecoder::server();
            dec.push(&bytes[..cut]);
            let mut got = drain(&mut dec);
            dec.push(&bytes[cut..]);
            got.extend(drain(&mut dec));
            assert_eq!(got, frames, "split at {cut}");
            assert_eq!(dec.routing(), Some(&b"route"[..]), "split at {cut}");
        }
    }

    #[test]
    fn oversize_length_is_an_error_not_an_allocation() {
        let mut dec = FrameDecoder::new().with_limit(1 << 20);
        // Declares 16 MiB - 1 bytes but sends 3: refused at once, nothing reserved.
        dec.push(&[0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(dec.next_frame(), Err(FrameError::TooLarge(0xff_ffff)));
        assert_eq!(dec.buffered(), 6);
        assert!(encode_frame(&vec![0; MAX_FRAME], &mut Vec::new()).is_err());
    }

    #[test]
    fn truncated_frame_waits() {
        let mut dec = FrameDecoder::new();
        dec.push(&[0, 0, 10, 1, 2]);
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.buffered(), 5);
    }

    #[test]
    fn dictionary_version_2_is_refused_by_name() {
        let mut dec = FrameDecoder::server();
        dec.push(&[0x57, 0x41, 6, 2, 0, 0, 0]);
        assert_eq!(dec.next_frame(), Err(FrameError::UnsupportedVersion(2)));
        let mut dec = FrameDecoder::server();
        dec.push(b"GET / HTTP/1.1");
        assert!(matches!(dec.next_frame(), Err(FrameError::BadHeader(_))));
    }
}
