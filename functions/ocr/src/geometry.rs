//! Plane geometry for text boxes: the convex hull of a region, its
//! minimum-area rectangle (OpenCV's `minAreaRect`), the rectangle grown by a
//! margin (what PaddleOCR's `unclip` amounts to for a rectangle), and the
//! perspective transform that maps a box onto an upright crop.

/// A point in pixels; `x` to the right, `y` down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    fn minus(self, o: Point) -> Point {
        Point::new(self.x - o.x, self.y - o.y)
    }

    pub fn distance(self, o: Point) -> f64 {
        let d = self.minus(o);
        d.x.hypot(d.y)
    }
}

/// The cross product of `a - o` and `b - o`: positive for a turn one way,
/// negative the other, zero when the three points are on a line.
fn cross(o: Point, a: Point, b: Point) -> f64 {
    let (a, b) = (a.minus(o), b.minus(o));
    a.x * b.y - a.y * b.x
}

/// The convex hull of `points` (Andrew's monotone chain), without collinear
/// points; fewer than three points when they are all on a line.
pub fn convex_hull(mut points: Vec<Point>) -> Vec<Point> {
    points.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let mut hull: Vec<Point> = Vec::with_capacity(points.len() + 1);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &Point>> = if pass == 0 {
            Box::new(points.iter())
        } else {
            Box::new(points.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        // The last point of each chain starts the other one.
        hull.pop();
    }
    hull
}

/// A rotated rectangle: its centre, its side along `axis` (`width`) and
/// across it (`height`), `axis` a unit vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotatedRect {
    pub center: Point,
    pub width: f64,
    pub height: f64,
    pub axis: Point,
}

impl RotatedRect {
    /// The shorter side.
    pub fn short_side(&self) -> f64 {
        self.width.min(self.height)
    }

    /// The same rectangle with `margin` added on every side.
    pub fn grown(&self, margin: f64) -> RotatedRect {
        RotatedRect {
            width: self.width + 2.0 * margin,
            height: self.height + 2.0 * margin,
            ..*self
        }
    }

    /// Its corners, in no particular order.
    pub fn corners(&self) -> [Point; 4] {
        let (u, v) = (self.axis, Point::new(-self.axis.y, self.axis.x));
        let (hw, hh) = (self.width / 2.0, self.height / 2.0);
        let at = |a: f64, b: f64| {
            Point::new(
                self.center.x + a * u.x + b * v.x,
                self.center.y + a * u.y + b * v.y,
            )
        };
        [at(-hw, -hh), at(hw, -hh), at(hw, hh), at(-hw, hh)]
    }
}

/// The rectangle of least area that holds the convex polygon `hull`
/// (rotating calipers: one of its sides lies along an edge of the hull).
/// `None` for fewer than three points.
pub fn min_area_rect(hull: &[Point]) -> Option<RotatedRect> {
    if hull.len() < 3 {
        return None;
    }
    let mut best: Option<(f64, RotatedRect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let edge = b.minus(a);
        let length = edge.x.hypot(edge.y);
        if length == 0.0 {
            continue;
        }
        let u = Point::new(edge.x / length, edge.y / length);
        let v = Point::new(-u.y, u.x);
        let (mut u_min, mut u_max, mut v_min, mut v_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in hull {
            let d = p.minus(a);
            let (pu, pv) = (d.x * u.x + d.y * u.y, d.x * v.x + d.y * v.y);
            u_min = u_min.min(pu);
            u_max = u_max.max(pu);
            v_min = v_min.min(pv);
            v_max = v_max.max(pv);
        }
        let (width, height) = (u_max - u_min, v_max - v_min);
        let area = width * height;
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (cu, cv) = ((u_min + u_max) / 2.0, (v_min + v_max) / 2.0);
            let center = Point::new(a.x + cu * u.x + cv * v.x, a.y + cu * u.y + cv * v.y);
            best = Some((
                area,
                RotatedRect {
                    center,
                    width,
                    height,
                    axis: u,
                },
            ));
        }
    }
    best.map(|(_, rect)| rect)
}

/// The area and perimeter of a polygon (shoelace formula).
pub fn area_and_perimeter(polygon: &[Point]) -> (f64, f64) {
    let mut twice_area = 0.0;
    let mut perimeter = 0.0;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[(i + 1) % polygon.len()]);
        twice_area += a.x * b.y - b.x * a.y;
        perimeter += a.distance(b);
    }
    (twice_area.abs() / 2.0, perimeter)
}

/// A convex quadrilateral, for testing many points against it: each edge's
/// start and unit direction (edges of no length left out).
pub struct ConvexQuad {
    edges: Vec<(Point, Point)>,
}

impl ConvexQuad {
    pub fn new(quad: &[Point; 4]) -> Self {
        let edges = (0..4)
            .filter_map(|i| {
                let (a, b) = (quad[i], quad[(i + 1) % 4]);
                let length = a.distance(b);
                (length > 0.0).then(|| (a, Point::new((b.x - a.x) / length, (b.y - a.y) / length)))
            })
            .collect();
        Self { edges }
    }

    /// Whether `p` lies inside or on an edge (within a hundredth of a
    /// pixel), whichever way round the corners go.
    pub fn contains(&self, p: Point) -> bool {
        const EDGE: f64 = 1e-2;
        let mut sign = 0.0f64;
        for (a, u) in &self.edges {
            // The distance of `p` from the edge's line, signed by side.
            let side = u.x * (p.y - a.y) - u.y * (p.x - a.x);
            if side.abs() <= EDGE {
                continue;
            }
            if sign == 0.0 {
                sign = side.signum();
            } else if side.signum() != sign {
                return false;
            }
        }
        true
    }
}

/// A projective transform of the plane (a 3x3 matrix, the last entry 1).
#[derive(Clone, Copy, Debug)]
pub struct Homography([f64; 9]);

impl Homography {
    /// The transform taking each of `from` to the same corner of `to`
    /// (OpenCV's `getPerspectiveTransform`); `None` when three of the points
    /// are on a line.
    pub fn between(from: &[Point; 4], to: &[Point; 4]) -> Option<Homography> {
        // h11..h32 from x' = (h11 x + h12 y + h13) / (h31 x + h32 y + 1),
        // y' likewise: two equations a point.
        let mut m = [[0.0f64; 9]; 8];
        for (i, (s, d)) in from.iter().zip(to).enumerate() {
            m[2 * i] = [s.x, s.y, 1.0, 0.0, 0.0, 0.0, -s.x * d.x, -s.y * d.x, d.x];
            m[2 * i + 1] = [0.0, 0.0, 0.0, s.x, s.y, 1.0, -s.x * d.y, -s.y * d.y, d.y];
        }
        let h = solve8(m)?;
        Some(Homography([
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0,
        ]))
    }

    pub fn apply(&self, p: Point) -> Point {
        let h = &self.0;
        let w = h[6] * p.x + h[7] * p.y + h[8];
        Point::new(
            (h[0] * p.x + h[1] * p.y + h[2]) / w,
            (h[3] * p.x + h[4] * p.y + h[5]) / w,
        )
    }
}

/// Solves eight linear equations (each row: eight coefficients, then the
/// right-hand side) by Gaussian elimination with partial pivoting.
fn solve8(mut m: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            if r != col && f != 0.0 {
                for (value, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *value -= f * p;
                }
            }
        }
    }
    let mut x = [0.0; 8];
    for (i, row) in m.iter().enumerate() {
        x[i] = row[8] / row[i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_hull_of_a_filled_square_is_its_corners() {
        let mut points = Vec::new();
        for y in 0..5 {
            for x in 0..5 {
                points.push(Point::new(x as f64, y as f64));
            }
        }
        let hull = convex_hull(points);
        assert_eq!(hull.len(), 4, "{hull:?}");
        let rect = min_area_rect(&hull).unwrap();
        assert!(close(rect.width * rect.height, 16.0));
        assert!(close(rect.center.x, 2.0) && close(rect.center.y, 2.0));
    }

    #[test]
    fn a_tilted_rectangle_is_found_at_its_angle() {
        // A 40 x 10 rectangle turned by 30 degrees.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let corners: Vec<Point> = [(-20.0, -5.0), (20.0, -5.0), (20.0, 5.0), (-20.0, 5.0)]
            .iter()
            .map(|&(x, y)| Point::new(100.0 + x * c - y * s, 50.0 + x * s + y * c))
            .collect();
        let rect = min_area_rect(&convex_hull(corners)).unwrap();
        let (long, short) = (rect.width.max(rect.height), rect.short_side());
        assert!(close(long, 40.0) && close(short, 10.0), "{rect:?}");
        let grown = rect.grown(2.0);
        assert!(close(grown.short_side(), 14.0));
    }

    #[test]
    fn collinear_points_have_no_rectangle() {
        let line: Vec<Point> = (0..10).map(|x| Point::new(x as f64, 3.0)).collect();
        assert!(min_area_rect(&convex_hull(line)).is_none());
    }

    #[test]
    fn area_perimeter_and_inside() {
        let quad = [
            Point::new(0.0, 0.0),
            Point::new(4.0, 0.0),
            Point::new(4.0, 2.0),
            Point::new(0.0, 2.0),
        ];
        assert_eq!(area_and_perimeter(&quad), (8.0, 12.0));
        let quad = ConvexQuad::new(&quad);
        assert!(quad.contains(Point::new(4.0, 1.0)));
        assert!(quad.contains(Point::new(2.0, 1.0)));
        assert!(!quad.contains(Point::new(4.5, 1.0)));
        assert!(!quad.contains(Point::new(2.0, -0.5)));
    }

    #[test]
    fn a_homography_maps_corners_to_corners() {
        let from = [
            Point::new(10.0, 12.0),
            Point::new(90.0, 20.0),
            Point::new(88.0, 45.0),
            Point::new(8.0, 40.0),
        ];
        let to = [
            Point::new(0.0, 0.0),
            Point::new(80.0, 0.0),
            Point::new(80.0, 28.0),
            Point::new(0.0, 28.0),
        ];
        let h = Homography::between(&from, &to).unwrap();
        for (f, t) in from.iter().zip(&to) {
            let p = h.apply(*f);
            assert!(
                (p.x - t.x).abs() < 1e-6 && (p.y - t.y).abs() < 1e-6,
                "{p:?} {t:?}"
            );
        }
    }
}
