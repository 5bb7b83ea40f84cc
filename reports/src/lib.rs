//! Reports: results in, HTML + SVG out. Reporters never compute statistics.
