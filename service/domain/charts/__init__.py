"""The SVG charts tunegate serves: one job's curves and a sweep's trials,
and the drawing primitives behind them."""
