"""A daemon's modelled battery drains in real time: three minutes of a node cost three minutes of
its device's power, not days of it."""

from qres.node.battery import Battery
from qres.swarm.energy import ESP32_C6


def test_three_minutes_of_rounds_cost_three_minutes_of_power():
    battery = Battery(ESP32_C6)
    for _ in range(90):  # 2 s rounds, a quarter second of CPU each, nothing sent
        battery.draw(2.0, 0.25, 0, 0)
    status = battery.status()
    assert status["elapsed_s"] == 180 and status["brownouts"] == 0 and status["charge"] > 0.99
    assert status["battery"] == "modelled" and status["clock"] == "wall"
    # per round the radio listens 1 s (230 mW) and sleeps 1 s (35 mW); 22 whole CPU seconds at 120 mW
    assert int(battery.pool.capacity_uj) - status["charge_uj"] == 90 * (230 + 35) * 1000 + 22 * 120 * 1000
    assert status["sleep_ratio"] == 0.5


def test_short_rounds_add_up_and_bytes_keep_the_radio_awake():
    battery = Battery(ESP32_C6)
    for _ in range(40):  # 0.25 s rounds: nothing drawn until a whole second has passed
        battery.draw(0.25, 0.0, 125_000, 0)  # 1 s of airtime at 250 kbit/s: awake the whole round
    assert battery.status()["elapsed_s"] == 10 and battery.status()["sleep_ratio"] == 0.0


def test_a_stored_charge_is_resumed_within_the_capacity():
    assert Battery(ESP32_C6, charge_uj=1_000).status()["charge_uj"] == 1_000
    assert Battery(ESP32_C6, charge_uj=10**18).status()["charge"] == 1.0
