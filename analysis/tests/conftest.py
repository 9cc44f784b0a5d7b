"""Shared fixtures: run the spiral binary on small scenarios written here.

The binary is $SPIRAL_EXE (default /work/main/build/spiral); tests that need
a run are skipped with the reason when it is absent.  Run with Debian's
Python:  /usr/bin/python3 -m pytest analysis/tests -q
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # analysis/ -> import spiral_analysis

SPIRAL_EXE = os.environ.get("SPIRAL_EXE", "/work/main/build/spiral")

# A 6-hour AMM crash: a GBM reference (every update recorded) loses 30 % over
# an hour from t = 1 h; finite-capital arbitrageurs, a fleeing LP, a
# Chainlink-style feed and an OSM on the pool's spot price.  ~0.1 s.
AMM_YAML = """\
name: test_amm
seed: 3
horizon: 6h
output:
  sample_every: 1m
tokens:
  - {name: ETH, kind: base}
  - {name: USDC, kind: stable}
references:
  - type: gbm
    asset: ETH
    initial: 2000
    volatility: 60%
    step: 12s
    record_every_update: true
    shocks:
      - {at: 1h, drop: 30%, over: 1h}
markets:
  - type: cpmm
    name: pool
    base: ETH
    quote: USDC
    reserve_base: 5000
    reserve_quote: 10000000
    fee: 0.3%
    record_every_trade: true
oracles:
  - type: chainlink
    name: feed
    source: {type: spot, of: pool}
    poll: 12s
    deviation: 0.5%
    heartbeat: 1h
  - type: osm
    name: osm
    source: {type: spot, of: pool}
    poll: 12s
    hop: 30m
agents:
  - type: arbitrageur
    name: fast
    count: 2
    venue: pool
    poll: 12s
    reaction: 12s
    gas_cost: 20
    min_profit: 10
    inventory: 60
    cash: 150000
  - type: arbitrageur
    name: slow
    count: 2
    venue: pool
    poll: 1m
    reaction: 2m
    gas_cost: 30
    min_profit: 25
    inventory: 150
    cash: 250000
  - type: liquidity_provider
    name: lp
    venue: pool
    inventory: 500
    cash: 1000000
    sample: 1m
    window: 30m
    max_drawdown: 8%
    max_volatility: 150%
    return_after: 1h
"""

# 30 minutes of a small order-book population around a GBM fundamental.
LOB_YAML = """\
name: test_lob
seed: 5
horizon: 30m
output:
  sample_every: 1m
tokens:
  - {name: ABM, kind: base}
  - {name: USD, kind: stable}
references:
  - type: gbm
    name: fundamental
    asset: ABM
    initial: 1000
    volatility: 5%
    step: 10s
markets:
  - type: lob
    name: abm
    base: ABM
    quote: USD
    tick_size: 0.01
    lot_size: 1
    initial_price: 1000
    window: 20%
    max_orders: 10000
    depth_levels: 3
agents:
  - {type: noise, name: noise, count: 50, venue: abm, reference: fundamental, cash: 100000,
     inventory: 100, mean_interval: 600, size: {dist: uniform, low: 1, high: 50},
     market_fraction: 50%, offset: {dist: uniform, low: 0, high: 0.0005}, order_life: 10m}
  - {type: value, name: value, count: 10, venue: abm, reference: fundamental, cash: 1000000,
     inventory: 1000, mean_interval: 60, noise: {dist: uniform, low: 0.0005, high: 0.002},
     size: {dist: uniform, low: 10, high: 100}, aggression: 10%}
  - {type: momentum, name: momentum, count: 3, venue: abm, cash: 1000000, inventory: 1000,
     mean_interval: 37, size: {dist: uniform, low: 1, high: 10}, short_window: 20, long_window: 50}
  - {type: market_maker, name: mm, count: 1, venue: abm, reference: fundamental, cash: 10000000,
     inventory: 5000, refresh: 60s, levels: 5, spread: 0.0002, level_spacing: 0.00005,
     size: 100, skew: 0.0005, max_inventory: 3000}
"""

# Lending, 8 hours (~0.3 s): an Aave-like pool lending USDC against ETH to 40
# looper positions (lognormal capital, leverage 1.5-4, 40 % inattentive) and an
# ETH vault (vETH shares, 3x); a Maker-like cdp taking vETH as collateral from a
# second vault (mETH), so /exposure has rows and /system a layer-1 leverage.
# ETH falls 35 % over an hour from t = 2 h: loopers become liquidatable (no
# liquidator in the scenario), the 3x vault's NAV goes negative.  Position
# snapshots every 30 min, samples every 10 min.
LENDING_YAML = """\
name: test_lending
seed: 4
horizon: 8h
output:
  sample_every: 10m
tokens:
  - {name: ETH, kind: base}
  - {name: USDC, kind: stable}
  - {name: DAI, kind: stable}
  - {name: aUSDC, kind: receipt, underlying: USDC, issuer: aave}
  - {name: vETH, kind: vault_share, underlying: ETH, issuer: vault}
  - {name: mETH, kind: vault_share, underlying: vETH, issuer: mvault}
references:
  - type: gbm
    asset: ETH
    initial: 2000
    volatility: 40%
    step: 1m
    shocks:
      - {at: 2h, drop: 35%, over: 1h}
markets:
  - {type: cpmm, name: pool, base: ETH, quote: USDC, reserve_base: 20000, reserve_quote: 40000000, fee: 0.3%}
  - {type: cpmm, name: dpool, base: vETH, quote: DAI, reserve_base: 50, reserve_quote: 58500, fee: 0.3%}
oracles:
  - {type: chainlink, name: eth_usd, poll: 12s, deviation: 0.5%, heartbeat: 1h, source: {type: reference, of: reference_ETH}}
  - {type: heartbeat, name: veth_usd, poll: 12s, heartbeat: 1h, source: {type: value, of: vETH}}
  - {type: heartbeat, name: usdc_usd, poll: 12s, heartbeat: 1h, source: {type: value, of: USDC}}
protocols:
  - type: pool
    name: aave
    positions_every: 30m
    assets:
      - {token: ETH, oracle: eth_usd, ltv: 80%, liquidation_threshold: 85%}
      - {token: USDC, oracle: usdc_usd, collateral: false, borrowable: true, receipt: aUSDC, initial_supply: 50000000}
  - type: cdp
    name: maker
    stablecoin: DAI
    positions_every: 30m
    collaterals:
      - {token: vETH, oracle: veth_usd, liquidation_ratio: 1.5}
agents:
  - {type: arbitrageur, name: arb, venue: pool, poll: 12s, cash: 200000000, inventory: 100000}
  - {type: looper, name: crowd, count: 40, protocol: aave, collateral: ETH, debt: USDC, venue: pool,
     capital: {dist: lognormal, mean: 2, sd: 1}, max_slippage: 20%,
     target_leverage: {dist: uniform, low: 1.5, high: 4}, inattentive: 40%,
     reaction: {dist: exponential, mean: 300}, hf_low: 1.1, start_spread: 10m}
  - {type: vault, name: mvault, share: mETH, asset: vETH, protocol: maker, debt: DAI, venue: dpool,
     target_leverage: 2, seed_capital: 20, max_slippage: 5%}
  - {type: vault, name: vault, share: vETH, protocol: aave, debt: USDC, venue: pool,
     target_leverage: 3, band: 0.25, seed_capital: 100}
"""


@pytest.fixture(scope="session")
def spiral_exe():
    if not (os.path.isfile(SPIRAL_EXE) and os.access(SPIRAL_EXE, os.X_OK)):
        pytest.skip(f"spiral binary not found at {SPIRAL_EXE} (set SPIRAL_EXE or build it: "
                    "cmake --build build --target spiral-cli)")
    return SPIRAL_EXE


def run_scenario(exe, tmp_dir, name, text, *extra):
    """Write ``text`` as NAME.yaml in tmp_dir, run it, return the .h5 path."""
    scen = os.path.join(tmp_dir, f"{name}.yaml")
    out = os.path.join(tmp_dir, f"{name}.h5")
    with open(scen, "w") as fh:
        fh.write(text)
    r = subprocess.run([exe, "run", scen, "-o", out, "--quiet", *extra],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"spiral run {name} failed ({r.returncode}): {r.stderr}"
    return out


@pytest.fixture(scope="session")
def amm_run(spiral_exe, tmp_path_factory):
    return run_scenario(spiral_exe, str(tmp_path_factory.mktemp("amm")), "test_amm", AMM_YAML,
                        "--seed", "11")


@pytest.fixture(scope="session")
def lob_run(spiral_exe, tmp_path_factory):
    return run_scenario(spiral_exe, str(tmp_path_factory.mktemp("lob")), "test_lob", LOB_YAML)


@pytest.fixture(scope="session")
def lending_run(spiral_exe, tmp_path_factory):
    return run_scenario(spiral_exe, str(tmp_path_factory.mktemp("lending")), "test_lending",
                        LENDING_YAML)
