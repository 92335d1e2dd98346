"""Cost: event-time accrual per asset, rollups, forecasts, budgets and recommendations."""
