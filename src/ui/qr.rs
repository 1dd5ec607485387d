//! QR codes for pairing: the module matrix (error correction level L, the smallest) and its
//! text renderings: Unicode half blocks (two modules per cell, stacked), a compact sextant form
//! (2x3 modules per cell) for terminals too short for half blocks, and ASCII (`##` per module).

use qrcode::{EcLevel, QrCode, Version};

/// The quiet zone the standard asks for, and the least we draw.
pub const QUIET_STANDARD: usize = 4;
pub const QUIET_MIN: usize = 2;

/// A QR text that could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the QR text is too long for a QR code ({len} bytes)")]
    TooLong { len: usize },
    #[error("the QR text could not be encoded: {0:?}")]
    Encode(qrcode::types::QrError),
}

/// The dark/light modules of one QR code, without quiet zone.
#[derive(Debug, Clone, PartialEq)]
pub struct QrMatrix {
    width: usize,
    version: i16,
    dark: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `text` at error correction level L (the smallest code for a given text: what
    /// matters on an 80x24 terminal).
    pub fn encode(text: &str) -> Result<QrMatrix, QrError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).map_err(
            |e| match e {
                qrcode::types::QrError::DataTooLong => QrError::TooLong { len: text.len() },
                other => QrError::Encode(other),
            },
        )?;
        let version = match code.version() {
            Version::Normal(v) | Version::Micro(v) => v,
        };
        Ok(QrMatrix {
            width: code.width(),
            version,
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect(),
        })
    }

    /// Modules per side, quiet zone excluded.
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn version(&self) -> i16 {
        self.version
    }

    /// Whether the module at (x, y) is dark; outside the code (the quiet zone) is light.
    pub fn is_dark(&self, x: isize, y: isize) -> bool {
        if x < 0 || y < 0 {
            return false;
        }
        let (x, y) = (x as usize, y as usize);
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }
}

/// How modules map onto character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrStyle {
    /// One column and half a row per module: square modules on usual terminal fonts.
    HalfBlock,
    /// Half a column and a third of a row per module (modules about 4:3 tall); needs a font
    /// with the Unicode 13 sextant blocks. Only used when half blocks cannot fit.
    Sextant,
    /// Two columns and one row per module, `##` or two spaces.
    Ascii,
}

/// A chosen rendering: style, quiet zone and the cells it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QrFit {
    pub style: QrStyle,
    pub quiet: usize,
    pub cols: u16,
    pub rows: u16,
}

/// The cells a code of `width` modules takes in `style` with a `quiet` zone.
pub fn cells(width: usize, style: QrStyle, quiet: usize) -> (usize, usize) {
    let n = width + 2 * quiet;
    match style {
        QrStyle::HalfBlock => (n, n.div_ceil(2)),
        QrStyle::Sextant => (n.div_ceil(2), n.div_ceil(3)),
        QrStyle::Ascii => (2 * n, n),
    }
}

/// The roomiest rendering that fits `cols` x `rows` cells: the largest quiet zone from 4 down
/// to 2 in the preferred style (half blocks, or ASCII), then, if `compact` is allowed and
/// Unicode is available, sextants.
pub fn fit(width: usize, cols: u16, rows: u16, ascii: bool, compact: bool) -> Option<QrFit> {
    let styles: &[QrStyle] = match (ascii, compact) {
        (true, _) => &[QrStyle::Ascii],
        (false, false) => &[QrStyle::HalfBlock],
        (false, true) => &[QrStyle::HalfBlock, QrStyle::Sextant],
    };
    for &style in styles {
        for quiet in (QUIET_MIN..=QUIET_STANDARD).rev() {
            let (c, r) = cells(width, style, quiet);
            if c <= usize::from(cols) && r <= usize::from(rows) {
                return Some(QrFit {
                    style,
                    quiet,
                    cols: c as u16,
                    rows: r as u16,
                });
            }
        }
    }
    None
}

/// The text lines of a rendering. Glyphs mark dark modules, or light ones when `invert` (for
/// a colourless dark terminal, where glyphs show light on dark).
pub fn render(matrix: &QrMatrix, fit: QrFit, invert: bool) -> Vec<String> {
    let q = fit.quiet as isize;
    let n = (matrix.width() + 2 * fit.quiet) as isize;
    // `on` is true where a glyph is drawn. Cells past the code's last row or column (when the
    // module count is not a multiple of the cell height) count as quiet zone.
    let on = |x: isize, y: isize| {
        if x >= n || y >= n {
            return invert;
        }
        matrix.is_dark(x - q, y - q) != invert
    };
    let mut lines = Vec::with_capacity(usize::from(fit.rows));
    match fit.style {
        QrStyle::HalfBlock => {
            for row in 0..fit.rows as isize {
                let y = row * 2;
                let line: String = (0..n)
                    .map(|x| match (on(x, y), on(x, y + 1)) {
                        (true, true) => '█',
                        (true, false) => '▀',
                        (false, true) => '▄',
                        (false, false) => ' ',
                    })
                    .collect();
                lines.push(line);
            }
        }
        QrStyle::Sextant => {
            for row in 0..fit.rows as isize {
                let y = row * 3;
                let line: String = (0..fit.cols as isize)
                    .map(|col| {
                        let x = col * 2;
                        let mut bits = 0u8;
                        for (i, (dx, dy)) in [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
                            .into_iter()
                            .enumerate()
                        {
                            if on(x + dx, y + dy) {
                                bits |= 1 << i;
                            }
                        }
                        sextant(bits)
                    })
                    .collect();
                lines.push(line);
            }
        }
        QrStyle::Ascii => {
            for y in 0..n {
                let line: String = (0..n).map(|x| if on(x, y) { "##" } else { "  " }).collect();
                lines.push(line);
            }
        }
    }
    lines
}

/// The character for six sub-cells (bit 0 top-left, 1 top-right, 2 middle-left ... 5
/// bottom-right). Unicode 13 encodes the 60 patterns that are not space, full block or a
/// half block in order from U+1FB00, skipping those four.
fn sextant(bits: u8) -> char {
    match bits {
        0 => ' ',
        63 => '█',
        21 => '▌',
        42 => '▐',
        b => {
            let skip = u32::from(b > 21) + u32::from(b > 42);
            char::from_u32(0x1FB00 + u32::from(b) - 1 - skip).unwrap_or('?')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a WhatsApp QR text with a simulator-length ref (`2@` + 24 base64 chars).
    fn typical_text() -> String {
        let b64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";
        format!(
            "https://wa.me/settings/linked_devices#2@c2ltdWxhdG9yLXJlZi0wMDAx,{b64},{b64},{b64},1"
        )
    }

    #[test]
    fn a_typical_pairing_text_is_version_9_at_level_l() {
        let text = typical_text();
        assert_eq!(text.len(), 201);
        let m = QrMatrix::encode(&text).unwrap();
        assert_eq!((m.version(), m.width()), (9, 53));
    }

    #[test]
    fn half_blocks_reproduce_every_module_and_a_light_quiet_zone() {
        let m = QrMatrix::encode(&typical_text()).unwrap();
        let f = fit(m.width(), 200, 200, false, false).unwrap();
        assert_eq!(
            (f.style, f.quiet, f.cols, f.rows),
            (QrStyle::HalfBlock, 4, 61, 31)
        );
        let lines = render(&m, f, false);
        assert_eq!(lines.len(), 31);
        for (row, line) in lines.iter().enumerate() {
            for (x, ch) in line.chars().enumerate() {
                let (top, bottom) = match ch {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                let (x, y) = (x as isize - 4, row as isize * 2 - 4);
                assert_eq!(top, m.is_dark(x, y), "module ({x},{y})");
                assert_eq!(bottom, m.is_dark(x, y + 1), "module ({x},{})", y + 1);
            }
        }
        assert!(lines[0].chars().all(|c| c == ' ') && lines[1].chars().all(|c| c == ' '));
    }

    #[test]
    fn the_quiet_zone_shrinks_before_the_code_is_refused() {
        // 53 modules: q=4 needs 61x31, q=3 59x30, q=2 57x29.
        assert_eq!(fit(53, 80, 30, false, false).map(|f| f.quiet), Some(3));
        assert_eq!(fit(53, 80, 29, false, false).map(|f| f.quiet), Some(2));
        assert_eq!(fit(53, 80, 28, false, false), None);
        // An 80x24 terminal cannot hold it with square modules; sextants fit (29x19 at q=4).
        let compact = fit(53, 80, 23, false, true).unwrap();
        assert_eq!((compact.style, compact.quiet), (QrStyle::Sextant, 4));
        assert_eq!((compact.cols, compact.rows), (31, 21));
        // ASCII takes two columns and a whole row per module.
        assert_eq!(cells(53, QrStyle::Ascii, 2), (114, 57));
    }

    #[test]
    fn sextants_reproduce_every_module() {
        let m = QrMatrix::encode(&typical_text()).unwrap();
        let f = fit(m.width(), 80, 23, false, true).unwrap();
        let lines = render(&m, f, false);
        for (row, line) in lines.iter().enumerate() {
            for (col, ch) in line.chars().enumerate() {
                let bits = (0u8..64).find(|b| sextant(*b) == ch).unwrap();
                for (i, (dx, dy)) in [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
                    .into_iter()
                    .enumerate()
                {
                    let (x, y) = (col as isize * 2 + dx - 4, row as isize * 3 + dy - 4);
                    let inside = (x + 4) < 61 && (y + 4) < 61;
                    let expected = inside && m.is_dark(x, y);
                    assert_eq!(bits & (1 << i) != 0, expected, "module ({x},{y})");
                }
            }
        }
    }

    #[test]
    fn sextant_code_points_are_the_unicode_ones() {
        assert_eq!(sextant(1), '\u{1FB00}');
        assert_eq!(sextant(20), '\u{1FB13}');
        assert_eq!(sextant(22), '\u{1FB14}');
        assert_eq!(sextant(62), '\u{1FB3B}');
        let all: std::collections::HashSet<char> = (0u8..64).map(sextant).collect();
        assert_eq!(all.len(), 64);
    }

    #[test]
    fn inverted_rendering_swaps_glyphs_and_blanks() {
        let m = QrMatrix::encode("hello").unwrap();
        let f = fit(m.width(), 200, 200, true, false).unwrap();
        let plain = render(&m, f, false);
        let inverted = render(&m, f, true);
        assert!(inverted[0].chars().all(|c| c == '#'));
        for (a, b) in plain.iter().zip(&inverted) {
            for (x, y) in a.chars().zip(b.chars()) {
                assert_ne!(x, y);
            }
        }
    }
}
