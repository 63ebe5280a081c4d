/**
 * Unit tests for the command-line value parsers, the debug port pool and the default-route reader.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigValueError,
  DEFAULT_DEBUG_PORTS,
  groupRuntimeArgs,
  parseBackendAddress,
  parsePortRange,
  parsePositiveInt,
  parseRuntime,
} from "../src/config.js";
import { PortPool } from "../src/limits/port-pool.js";
import { defaultRouteInterface } from "../src/debug-host.js";

describe("parsePortRange", () => {
  test("begin-end, inclusive bounds", () => {
    assert.deepEqual(parsePortRange("64120-64130"), { begin: 64120, end: 64130 });
    assert.deepEqual(parsePortRange(" 1000 - 1000 "), { begin: 1000, end: 1000 });
  });

  test("the default range", () => {
    assert.deepEqual(parsePortRange(DEFAULT_DEBUG_PORTS), { begin: 64120, end: 64130 });
  });

  test("reversed bounds are swapped", () => {
    assert.deepEqual(parsePortRange("64130-64120"), { begin: 64120, end: 64130 });
  });

  test("junk is refused", () => {
    for (const v of ["", "64120", "64120-", "-64130", "a-b", "1-2-3", "64120:64130", "1.5-3", "0x10-0x20"]) {
      assert.throws(() => parsePortRange(v), ConfigValueError, JSON.stringify(v));
    }
  });

  test("ports outside 1..65535 are refused", () => {
    for (const v of ["0-10", "65000-65536", "70000-80000"]) {
      assert.throws(() => parsePortRange(v), ConfigValueError, v);
    }
    assert.deepEqual(parsePortRange("1-65535"), { begin: 1, end: 65535 });
  });
});

describe("parseBackendAddress", () => {
  test("tcp with a host name, an IPv4 or a bracketed IPv6 address", () => {
    for (const v of ["tcp://127.0.0.1:2001", "tcp://backend.example:2001", "tcp://[::1]:2001", "tcp://[fe80::1]:65535"]) {
      assert.equal(parseBackendAddress(v), v);
    }
  });

  test("ipc paths", () => {
    assert.equal(parseBackendAddress("ipc:///tmp/backend.sock"), "ipc:///tmp/backend.sock");
  });

  test("bad addresses are refused", () => {
    for (const v of [
      "", "127.0.0.1:2001", "tcp://127.0.0.1", "tcp://127.0.0.1:", "tcp://:2001", "tcp://::1:2001", "tcp://[::1]",
      "tcp://host:0", "tcp://host:65536", "tcp://host:port", "udp://host:2001", "ipc://", "tcp://ho st:1",
    ]) {
      assert.throws(() => parseBackendAddress(v), ConfigValueError, JSON.stringify(v));
    }
  });
});

describe("parsePositiveInt", () => {
  test("positive integers, surrounding spaces allowed", () => {
    assert.equal(parsePositiveInt("1"), 1);
    assert.equal(parsePositiveInt(" 42 "), 42);
    assert.equal(parsePositiveInt("007"), 7);
  });

  test("zero, negatives, fractions, junk and huge values are refused", () => {
    for (const v of ["0", "-1", "1.5", "", "abc", "4x", "1e3", "99999999999999999999"]) {
      assert.throws(() => parsePositiveInt(v), ConfigValueError, JSON.stringify(v));
    }
  });

  test("the error names what was expected", () => {
    assert.throws(() => parsePositiveInt("x", "a concurrency"), /expected a concurrency, got "x"/);
  });
});

describe("parseRuntime", () => {
  test("name and envtype only: no root, not shared, no gpu", () => {
    assert.deepEqual(parseRuntime(["runc", "docker"]), {
      runtime: "runc", envtype: "docker", runAsRoot: false, shared: false, gpu: false,
    });
  });

  test("root and shared flags, in any order", () => {
    assert.deepEqual(parseRuntime(["kata-runtime", "kata", "root"]), {
      runtime: "kata-runtime", envtype: "kata", runAsRoot: true, shared: false, gpu: false,
    });
    assert.deepEqual(parseRuntime(["runc", "docker", "shared", "root"]), {
      runtime: "runc", envtype: "docker", runAsRoot: true, shared: true, gpu: false,
    });
  });

  test("an nvidia runtime is a GPU runtime", () => {
    assert.equal(parseRuntime(["nvidia", "nvidia", "shared"]).gpu, true);
  });

  test("an unknown flag is refused", () => {
    assert.throws(() => parseRuntime(["runc", "docker", "gpu"]), /unknown runtime flag "gpu"/);
  });

  test("fewer than two words are refused", () => {
    assert.throws(() => parseRuntime(["runc"]), ConfigValueError);
    assert.throws(() => parseRuntime([]), ConfigValueError);
  });
});

describe("groupRuntimeArgs", () => {
  test("two --runtime groups keep their boundaries", () => {
    const argv = ["--ssh", "--runtime", "runc", "docker", "shared", "--concurrency", "2", "--runtime", "kata-runtime", "kata", "root"];
    assert.deepEqual(groupRuntimeArgs(argv), [["runc", "docker", "shared"], ["kata-runtime", "kata", "root"]]);
  });

  test("a group ends at the next option", () => {
    assert.deepEqual(groupRuntimeArgs(["--runtime", "runc", "docker", "-v"]), [["runc", "docker"]]);
  });

  test("an empty group is kept so that parseRuntime can refuse it", () => {
    assert.deepEqual(groupRuntimeArgs(["--runtime", "--ssh"]), [[]]);
  });

  test("no --runtime gives no groups", () => {
    assert.deepEqual(groupRuntimeArgs(["tcp://127.0.0.1:2001", "--ssh"]), []);
  });

  test("the --runtime=NAME spelling is not dropped silently", () => {
    // commander accepts --runtime=runc as the option with value runc; the group must not vanish
    const groups = groupRuntimeArgs(["--runtime=runc", "docker"]);
    assert.equal(groups.length, 1);
    assert.equal(groups[0]![0], "runc");
  });
});

describe("PortPool", () => {
  test("the range is inclusive", () => {
    assert.equal(new PortPool({ begin: 64120, end: 64130 }).available, 11);
  });

  test("no range: no ports", () => {
    const p = new PortPool(null);
    assert.equal(p.available, 0);
    assert.equal(p.take(1), null);
    assert.deepEqual(p.take(0), []);
  });

  test("take gives the lowest free ports, all or nothing", () => {
    const p = new PortPool({ begin: 10, end: 14 });
    assert.deepEqual(p.take(2), [10, 11]);
    assert.equal(p.take(4), null);
    assert.equal(p.available, 3, "a refused take takes nothing");
    assert.deepEqual(p.take(3), [12, 13, 14]);
    assert.equal(p.take(1), null);
  });

  test("released ports come back in order and can be taken again", () => {
    const p = new PortPool({ begin: 10, end: 12 });
    const a = p.take(2)!;
    p.take(1);
    p.release([a[1]!]);
    p.release([a[0]!]);
    assert.equal(p.available, 2);
    assert.deepEqual(p.take(2), [10, 11]);
  });

  test("releasing twice, or ports never taken, changes nothing", () => {
    const p = new PortPool({ begin: 10, end: 11 });
    const got = p.take(1)!;
    p.release(got);
    p.release(got);
    p.release([11, 99]);
    assert.equal(p.available, 2);
    assert.deepEqual(p.take(2), [10, 11]);
    assert.equal(p.take(1), null);
  });

  test("release accepts any iterable", () => {
    const p = new PortPool({ begin: 1, end: 3 });
    p.release(new Set(p.take(3)));
    assert.equal(p.available, 3);
  });
});

describe("defaultRouteInterface", () => {
  const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

  test("the interface of the 00000000 destination", () => {
    const table = header +
      "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
      "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
      "eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
    assert.equal(defaultRouteInterface(table), "eth0");
  });

  test("the first default route wins", () => {
    const table = header +
      "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
      "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
    assert.equal(defaultRouteInterface(table), "wlan0");
  });

  test("no default route, an empty table or nothing at all give null", () => {
    assert.equal(defaultRouteInterface(header + "eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"), null);
    assert.equal(defaultRouteInterface(header), null);
    assert.equal(defaultRouteInterface(""), null);
  });

  test("the header line is never taken for a route", () => {
    assert.equal(defaultRouteInterface("x 00000000\n"), null);
  });
});
