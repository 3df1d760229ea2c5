//! `LOLWUT [VERSION v] [...]`: Redis's bit of fun. `VERSION 5` draws Georg Nees's
//! "Schotter" (squares that tumble more the lower they are) in Braille dots; any other
//! version answers with the version line, as Redis 7.0 does.

use bytes::Bytes;

use super::{Ctx, is};

/// A black-and-white canvas.
struct Canvas {
    width: i64,
    height: i64,
    pixels: Vec<bool>,
}

impl Canvas {
    fn new(width: i64, height: i64) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![false; (width * height).max(0) as usize],
        }
    }

    fn get(&self, x: i64, y: i64) -> bool {
        (0..self.width).contains(&x)
            && (0..self.height).contains(&y)
            && self.pixels[(x + y * self.width) as usize]
    }

    fn set(&mut self, x: i64, y: i64) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize] = true;
        }
    }

    /// Bresenham's line.
    fn line(&mut self, (mut x, mut y): (i64, i64), (x2, y2): (i64, i64)) {
        let (dx, dy) = ((x2 - x).abs(), (y2 - y).abs());
        let (sx, sy) = (if x < x2 { 1 } else { -1 }, if y < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x, y);
            if x == x2 && y == y2 {
                return;
            }
            let twice = err * 2;
            if twice > -dy {
                err -= dy;
                x += sx;
            }
            if twice < dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A square of side `side` centred on (x, y), turned by `angle` radians.
    fn square(&mut self, x: i64, y: i64, side: f64, angle: f64) {
        let radius = (side / std::f64::consts::SQRT_2).round();
        let corners: Vec<(i64, i64)> = (0..4)
            .map(|j| {
                let k = std::f64::consts::FRAC_PI_4
                    + angle
                    + f64::from(j) * std::f64::consts::FRAC_PI_2;
                (
                    (k.sin() * radius + x as f64).round() as i64,
                    (k.cos() * radius + y as f64).round() as i64,
                )
            })
            .collect();
        for j in 0..4 {
            self.line(corners[j], corners[(j + 1) % 4]);
        }
    }

    /// Each 2×4 block of pixels as one Braille character (U+2800 + dots).
    fn render(&self) -> String {
        let mut text = String::new();
        for y in (0..self.height).step_by(4) {
            for x in (0..self.width).step_by(2) {
                let dots = [
                    (0, 0, 0),
                    (0, 1, 1),
                    (0, 2, 2),
                    (1, 0, 3),
                    (1, 1, 4),
                    (1, 2, 5),
                    (0, 3, 6),
                    (1, 3, 7),
                ];
                let bits = dots
                    .iter()
                    .filter(|&&(dx, dy, _)| self.get(x + dx, y + dy))
                    .fold(0u32, |bits, &(_, _, bit)| bits | 1 << bit);
                text.push(char::from_u32(0x2800 + bits).unwrap_or(' '));
            }
            if y != self.height - 1 {
                text.push('\n');
            }
        }
        text
    }
}

/// The largest canvas drawn (16 million pixels, 4 MB of Braille text at most).
const MAX_PIXELS: i64 = 1 << 24;

/// Schotter on a canvas `columns` characters wide.
fn schotter(
    columns: i64,
    per_row: i64,
    per_column: i64,
    mut random: impl FnMut() -> f64,
) -> Canvas {
    let width = columns * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f64 / per_row as f64;
    // Redis's limits alone allow a canvas of 800 million pixels (1000 columns, one square
    // per row, 200 rows): fewer rows are drawn when the canvas would pass MAX_PIXELS.
    let per_column = per_column
        .min(((MAX_PIXELS / width) as f64 / side.max(1.0)) as i64)
        .max(1);
    let height = (side * per_column as f64) as i64 + padding * 2;
    let mut canvas = Canvas::new(width, height);
    for row in 0..per_column {
        for column in 0..per_row {
            let mut x = (column as f64 * side + side / 2.0) as i64 + padding;
            let mut y = (row as f64 * side + side / 2.0) as i64 + padding;
            let mut angle = 0.0;
            // From the third row on, each square is turned and moved at random, more so the
            // lower it is.
            if row > 1 {
                let mut jitter = || {
                    let value = random() / per_column as f64 * row as f64;
                    if random() < 0.5 { -value } else { value }
                };
                angle = jitter();
                x += (jitter() * side / 3.0) as i64;
                y += (jitter() * side / 3.0) as i64;
            }
            canvas.square(x, y, side, angle);
        }
    }
    canvas
}

/// `LOLWUT [VERSION v] [columns [squares-per-row [squares-per-column]]]`
pub(super) fn lolwut(ctx: &mut Ctx, args: &[Bytes]) {
    let mut version = 7;
    let mut rest = &args[1..];
    if rest.len() >= 2 && is(&rest[0], "version") {
        let Ok(asked) = ctx.int_arg(&rest[1]) else {
            return;
        };
        version = asked;
        rest = &rest[2..];
    }
    if version != 5 {
        ctx.out.verbatim(b"txt", b"Redis ver. 7.0.15\n");
        return;
    }
    let mut numbers = [66i64, 8, 12];
    for (slot, arg) in numbers.iter_mut().zip(rest) {
        let Ok(value) = ctx.int_arg(arg) else {
            return;
        };
        *slot = value;
    }
    let [columns, per_row, per_column] = numbers;
    let mut next = super::seeded(ctx.server.keyspace.next_random());
    let canvas = schotter(
        columns.clamp(1, 1000),
        per_row.clamp(1, 200),
        per_column.clamp(1, 200),
        || (next() >> 11) as f64 / (1u64 << 53) as f64,
    );
    let mut text = canvas.render();
    text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. 7.0.15\n");
    ctx.out.verbatim(b"txt", text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schotter_has_redis_dimensions() {
        // 66 columns, 8 × 12 squares of 16 pixels and a 2-pixel border: 132 × 196 pixels,
        // 49 text rows of 66 characters.
        let canvas = schotter(66, 8, 12, || 0.5);
        assert_eq!((canvas.width, canvas.height), (132, 196));
        let text = canvas.render();
        assert_eq!(text.lines().count(), 49);
        assert!(text.lines().all(|line| line.chars().count() == 66));
        assert!(text.chars().any(|c| c != '\u{2800}' && c != '\n'));
    }

    #[test]
    fn the_largest_request_stays_within_the_pixel_bound() {
        let canvas = schotter(1000, 1, 200, || 0.5);
        assert!(canvas.width * canvas.height <= MAX_PIXELS + canvas.width * 4);
        assert!(canvas.height > 0);
    }
}
