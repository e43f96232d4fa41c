import fw_fixtures as fx

from insitu_node import config


def _err(cfg):
    try:
        config.validate(cfg)
    except config.ConfigError as e:
        return e.args
    raise AssertionError("accepted")


def test_fixture_valid_and_normalised():
    c = config.validate(fx.config(6))
    assert len(c["bonds"]) == 6 and c["bonds"][2]["bond"] == (3, 4)
    assert c["wdt"]["enable"] is False and c["tags"] == 16
    assert c["bonds"][0]["element"]["table"][0] == (100.0, 1000)


def test_errors_name_the_field():
    c = fx.config(2)
    c["bonds"][1]["k_init"] = 500.0
    assert _err(c)[0] == "bonds[1].k_init"
    c = fx.config(2)
    c["bonds"][0]["element"]["table"] = [[150.0, 1000], [160.0, 2000]]
    assert _err(c)[0] == "bonds[0].element.table"
    c = fx.config(2)
    c["bonds"][1]["slot"] = 0
    assert _err(c)[0] == "bonds[1].slot"
    assert _err(fx.config(1, node="*"))[0] == "node"
    c = fx.config(1)
    c["family"] = "avr"
    assert _err(c)[0] == "family"
    c = fx.config(1)
    c["bonds"][0]["sensor"] = {"type": "hx711", "gain": 100}
    assert _err(c)[0] == "bonds[0].sensor.gain"
    c = fx.config(1, disp=2)
    c["disp"][1]["axis"] = 3
    assert _err(c)[0] == "disp"


def test_hash_is_crc_of_canonical_text():
    raw = fx.config(3)
    text = config.canonical(raw)
    assert " " not in text and text.startswith('{"bonds":[')
    c1, h1 = config.from_dict(raw)
    c2, h2 = config.load_text(text + "\n")
    assert h1 == h2 and len(h1) == 8
    raw["bonds"][0]["k_init"] = 140.0
    assert config.from_dict(raw)[1] != h1


# family limits: watchdog per chip, servo pulse range per pin map, the coil's flexure
def _wdt(family, ms):
    c = fx.config(1)
    c["family"] = family
    c["wdt"] = {"enable": True, "timeout_ms": ms}
    return c


def test_watchdog_limits_per_family():
    assert _err(_wdt("esp32", 999)) == ("wdt.timeout_ms", "below 1000")
    assert config.validate(_wdt("esp32", 1000))["wdt"]["timeout_ms"] == 1000
    assert config.validate(_wdt("esp32", 20000))["wdt"]["timeout_ms"] == 20000
    assert _err(_wdt("rp2", 8389)) == ("wdt.timeout_ms", "above 8388")
    assert config.validate(_wdt("rp2", 8388))["wdt"]["timeout_ms"] == 8388
    assert config.validate(_wdt("rp2", 100))["wdt"]["timeout_ms"] == 100


def test_servo_pulses_500_2500_unless_the_map_says_otherwise():
    c = fx.config(2)
    c["bonds"][1]["element"]["table"] = [[100.0, 400], [200.0, 2000]]
    assert _err(c) == ("bonds[1].element.table[0].us", "below 500")
    c["bonds"][1]["element"]["table"] = [[100.0, 1000], [200.0, 2600]]
    assert _err(c) == ("bonds[1].element.table[1].us", "above 2500")
    c["bonds"][1]["element"]["us_max"] = 2700  # the servo's own range, from the pin map
    assert config.validate(c)["bonds"][1]["element"]["table"][1] == (200.0, 2600)
    c["bonds"][1]["element"]["us_min"] = 2800
    assert _err(c) == ("bonds[1].element.us_max", "below 2800")
    c["bonds"][1]["element"]["us_min"] = 50
    assert _err(c) == ("bonds[1].element.us_min", "below 100")


def test_coil_flexure_field():
    c = fx.config(1, coil=True)
    assert "flex_k" not in config.validate(c)["bonds"][0]["element"]  # the loop takes 0
    c["bonds"][0]["element"]["flex_k"] = 20
    assert config.validate(c)["bonds"][0]["element"]["flex_k"] == 20.0
    c["bonds"][0]["element"]["flex_k"] = -1.0
    assert _err(c) == ("bonds[0].element.flex_k", "below 0.0")
