//! The city map: sub-bureaus, police stations and districts as polygons, adjacency, point routing
