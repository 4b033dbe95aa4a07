//! `kv get|put|delete|export|import` against a running `-dev` agent, including failures, and the
//! binary invoked as `consul`.

mod cli_support;
mod support;

use cli_support::{cli, cli_stdin, command, consul_link, dead_addr, fails, ok, run_command};
use support::{test_dir, Agent};

#[test]
fn kv_put_then_get_prints_the_value_and_details() {
    let agent = Agent::dev("cli-kv-basic", &[]);
    let http = agent.http;
    assert_eq!(
        ok(http, &["kv", "put", "app/name", "web"]),
        "Success! Data written to: app/name\n"
    );
    assert_eq!(ok(http, &["kv", "get", "app/name"]), "web\n");
    assert_eq!(
        ok(http, &["kv", "get", "/app/name"]),
        "web\n",
        "a leading slash is stripped"
    );
    ok(http, &["kv", "put", "-flags=42", "app/flagged", "x"]);
    let detailed = ok(http, &["kv", "get", "-detailed", "app/flagged"]);
    let lines: Vec<&str> = detailed.lines().collect();
    assert_eq!(lines[1], "Flags            42");
    assert_eq!(lines[2], "Key              app/flagged");
    assert_eq!(lines[5], "Session          -");
    assert_eq!(lines[6], "Value            x");
    assert_eq!(
        ok(http, &["kv", "get", "-base64", "-detailed", "app/name"])
            .lines()
            .last(),
        Some("Value            d2Vi")
    );
    ok(http, &["kv", "put", "empty"]);
    assert_eq!(ok(http, &["kv", "get", "empty"]), "\n");
}

#[test]
fn kv_get_recurse_keys_and_separator() {
    let agent = Agent::dev("cli-kv-recurse", &[]);
    let http = agent.http;
    for (key, value) in [("a/b", "1"), ("a/c/d", "2"), ("a/c/e", "3"), ("z", "4")] {
        ok(http, &["kv", "put", key, value]);
    }
    assert_eq!(
        ok(http, &["kv", "get", "-recurse", "a"]),
        "a/b:1\na/c/d:2\na/c/e:3\n"
    );
    assert_eq!(
        ok(http, &["kv", "get", "-recurse", "-base64", "a/b"]),
        "a/b:MQ==\n"
    );
    assert_eq!(ok(http, &["kv", "get", "-keys", "a/"]), "a/b\na/c/\n");
    assert_eq!(
        ok(http, &["kv", "get", "-keys", "-separator=", "a/"]),
        "a/b\na/c/d\na/c/e\n"
    );
    assert_eq!(ok(http, &["kv", "get", "-keys"]), "a/\nz\n");
    let detailed = ok(http, &["kv", "get", "-recurse", "-detailed", "a/c"]);
    assert_eq!(detailed.split("\n\n").count(), 2, "{detailed}");
    assert_eq!(ok(http, &["kv", "get", "-recurse", "nothing"]), "");
}

#[test]
fn kv_put_reads_files_stdin_and_base64() {
    let agent = Agent::dev("cli-kv-input", &[]);
    let http = agent.http;
    let dir = test_dir("cli-kv-input");
    let file = dir.join("value.txt");
    std::fs::write(&file, "from a file").expect("write");
    ok(http, &["kv", "put", "f", &format!("@{}", file.display())]);
    assert_eq!(ok(http, &["kv", "get", "f"]), "from a file\n");
    let out = cli_stdin(http, &["kv", "put", "s", "-"], b"from stdin");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(ok(http, &["kv", "get", "s"]), "from stdin\n");
    ok(http, &["kv", "put", "-base64", "b", "aGVsbG8="]);
    assert_eq!(ok(http, &["kv", "get", "b"]), "hello\n");
    let err = fails(http, &["kv", "put", "-base64", "b", "!!"]);
    assert!(
        err.starts_with("Error! Cannot base 64 decode data"),
        "{err}"
    );
    let err = fails(http, &["kv", "put", "f", "@/nonexistent/file"]);
    assert!(err.starts_with("Error! Failed to read file"), "{err}");
}

#[test]
fn kv_cas_acquire_and_release() {
    let agent = Agent::dev("cli-kv-cas", &[]);
    let http = agent.http;
    ok(http, &["kv", "put", "c", "1"]);
    let detailed = ok(http, &["kv", "get", "-detailed", "c"]);
    let index = detailed
        .lines()
        .find_map(|l| l.strip_prefix("ModifyIndex"))
        .expect("ModifyIndex")
        .trim()
        .to_string();
    let err = fails(http, &["kv", "put", "-cas", "-modify-index=1", "c", "2"]);
    assert_eq!(err, "Error! Did not write to c: CAS failed\n");
    let cas = format!("-modify-index={index}");
    assert_eq!(
        ok(http, &["kv", "put", "-cas", &cas, "c", "2"]),
        "Success! Data written to: c\n"
    );
    assert_eq!(
        fails(http, &["kv", "put", "-cas", "c", "3"]),
        "Must specify -modify-index with -cas!\n"
    );
    assert_eq!(
        fails(http, &["kv", "put", "-acquire", "c", "3"]),
        "Error! Missing -session (required with -acquire and -release)\n"
    );
    let session = agent.call("PUT", "/v1/session/create", b"{}").json()["ID"]
        .as_str()
        .expect("session")
        .to_string();
    let with = format!("-session={session}");
    assert_eq!(
        ok(http, &["kv", "put", "-acquire", &with, "l", "v"]),
        "Success! Lock acquired on: l\n"
    );
    assert!(ok(http, &["kv", "get", "-detailed", "l"]).contains(&session));
    assert_eq!(
        ok(http, &["kv", "put", "-release", &with, "l"]),
        "Success! Lock released on: l\n"
    );
    let other = "-session=00000000-0000-0000-0000-000000000000";
    let err = fails(http, &["kv", "put", "-release", other, "l"]);
    assert!(
        err == "Error! Did not release lock\n" || err == "Error! Failed writing data: l\n",
        "{err}"
    );
}

#[test]
fn kv_delete_key_prefix_and_cas() {
    let agent = Agent::dev("cli-kv-delete", &[]);
    let http = agent.http;
    for key in ["d/1", "d/2", "keep"] {
        ok(http, &["kv", "put", key, "v"]);
    }
    assert_eq!(
        ok(http, &["kv", "delete", "d/1"]),
        "Success! Deleted key: d/1\n"
    );
    assert_eq!(
        fails(http, &["kv", "get", "d/1"]),
        "Error! No key exists at: d/1\n"
    );
    assert_eq!(
        ok(http, &["kv", "delete", "-recurse", "d/"]),
        "Success! Deleted keys with prefix: d/\n"
    );
    assert_eq!(ok(http, &["kv", "get", "-keys"]), "keep\n");
    assert_eq!(
        fails(http, &["kv", "delete", "-cas", "-modify-index=1", "keep"]),
        "Error! Did not delete key keep: CAS failed\n"
    );
    assert_eq!(
        fails(http, &["kv", "delete", "-cas", "-recurse", "keep"]),
        "Cannot specify both -cas and -recurse!\n"
    );
    assert_eq!(
        fails(http, &["kv", "delete"]),
        "Error! Missing KEY argument\n"
    );
}

#[test]
fn kv_export_then_import_restores_keys_and_flags() {
    let agent = Agent::dev("cli-kv-export", &[]);
    let http = agent.http;
    ok(http, &["kv", "put", "-flags=7", "e/a", "alpha"]);
    ok(http, &["kv", "put", "e/b", "beta"]);
    let exported = ok(http, &["kv", "export", "e/"]);
    assert!(
        exported.starts_with(
            "[\n\t{\n\t\t\"key\": \"e/a\",\n\t\t\"flags\": 7,\n\t\t\"value\": \"YWxwaGE=\"\n\t},"
        ),
        "{exported}"
    );
    ok(http, &["kv", "delete", "-recurse", "e/"]);
    assert_eq!(ok(http, &["kv", "export", "e/"]), "[]\n");
    let out = cli_stdin(http, &["kv", "import", "-"], exported.as_bytes());
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Imported: e/a\nImported: e/b\n"),
        "{out:?}"
    );
    assert!(ok(http, &["kv", "get", "-detailed", "e/a"]).contains("Flags            7"));
    let dir = test_dir("cli-kv-export");
    let file = dir.join("export.json");
    std::fs::write(&file, &exported).expect("write");
    let imported = ok(
        http,
        &[
            "kv",
            "import",
            "-prefix=copy/",
            &format!("@{}", file.display()),
        ],
    );
    assert_eq!(imported, "Imported: copy/e/a\nImported: copy/e/b\n");
    assert_eq!(ok(http, &["kv", "get", "copy/e/b"]), "beta\n");
    let err = cli_stdin(http, &["kv", "import"], b"not json");
    assert_eq!(err.code, 1);
    assert!(err.stderr.starts_with("Cannot unmarshal data"), "{err:?}");
}

#[test]
fn kv_failures_give_consuls_messages_and_exit_1() {
    let dead = dead_addr();
    let err = fails(dead, &["kv", "get", "a"]);
    let expected = format!(
        "Error querying Consul agent: Get \"http://{dead}/v1/kv/a\": dial tcp {dead}: connect: connection refused\n"
    );
    assert_eq!(err, expected);
    let err = fails(dead, &["kv", "put", "a", "b"]);
    assert!(
        err.starts_with("Error! Failed writing data: Put \"http://"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("connection refused"), "{err}");
    let err = fails(dead, &["kv", "get", "-bogus", "a"]);
    assert!(
        err.starts_with("flag provided but not defined: -bogus\nUsage: cairn kv get"),
        "{err}"
    );
    assert_eq!(fails(dead, &["kv", "get"]), "Error! Missing KEY argument\n");
    assert_eq!(
        fails(dead, &["kv", "get", "a", "b"]),
        "Too many arguments (expected 1, got 2)\n"
    );
    assert_eq!(fails(dead, &["kv", "put"]), "Error! Missing KEY argument\n");
    assert!(fails(dead, &["kv", "put", "-flags=x", "a"])
        .starts_with("invalid value \"x\" for flag -flags"));
    let err = fails(dead, &["kv", "get", "-http-addr=https://127.0.0.1:1", "a"]);
    assert!(err.contains("HTTPS is not supported"), "{err}");
    for sub in ["get", "put", "delete", "export", "import"] {
        let out = cli(dead, &["kv", sub, "-h"]);
        assert_eq!(out.code, 0, "{sub}: {out:?}");
        assert!(
            out.stderr.starts_with(&format!("Usage: cairn kv {sub}")),
            "{sub}: {out:?}"
        );
    }
    assert_eq!(cli(dead, &["kv", "--help"]).code, 0);
    let late = cli(dead, &["kv", "get", "some/key", "-help"]);
    assert_eq!(late.code, 0, "help after the key: {late:?}");
    assert!(late.stderr.starts_with("Usage: cairn kv get"), "{late:?}");
    assert_eq!(cli(dead, &["kv"]).code, 1);
}

#[test]
fn kv_flags_and_env_pick_the_agent() {
    let agent = Agent::dev("cli-kv-env", &[]);
    let addr = format!("-http-addr=http://{}", agent.http);
    // The flag wins over a wrong CONSUL_HTTP_ADDR.
    assert_eq!(
        ok(dead_addr(), &["kv", "put", &addr, "k", "v"]),
        "Success! Data written to: k\n"
    );
    let mut with_token = command(
        std::path::Path::new(cli_support::BIN),
        Some(agent.http),
        &["kv", "get", "-stale", "-datacenter=dc1", "k"],
    );
    with_token
        .env("CONSUL_HTTP_TOKEN", "anything")
        .env("CONSUL_HTTP_SSL", "false");
    let out = run_command(with_token, b"");
    assert_eq!((out.code, out.stdout.as_str()), (0, "v\n"), "{out:?}");
    let dir = test_dir("cli-kv-env");
    let token = dir.join("token");
    std::fs::write(&token, "secret\n").expect("write");
    let file_flag = format!("-token-file={}", token.display());
    assert_eq!(ok(agent.http, &["kv", "get", &file_flag, "k"]), "v\n");
    let missing = fails(agent.http, &["kv", "get", "-token-file=/nonexistent", "k"]);
    assert!(
        missing.starts_with("Error connecting to Consul agent: Error loading token file"),
        "{missing}"
    );
}

#[test]
fn consul_name_puts_and_gets() {
    let agent = Agent::dev("cli-kv-consul", &[]);
    let dir = test_dir("cli-kv-consul");
    let consul = consul_link(&dir);
    let put = run_command(
        command(&consul, Some(agent.http), &["kv", "put", "a", "b"]),
        b"",
    );
    assert_eq!(put.code, 0, "{put:?}");
    let get = run_command(command(&consul, Some(agent.http), &["kv", "get", "a"]), b"");
    assert_eq!((get.code, get.stdout.as_str()), (0, "b\n"));
    let help = run_command(command(&consul, None, &["kv", "get", "-h"]), b"");
    assert!(help.stderr.starts_with("Usage: consul kv get"), "{help:?}");
    let usage = run_command(command(&consul, None, &[]), b"");
    assert!(usage.stderr.starts_with("Usage: consul"), "{usage:?}");
    assert!(usage.stderr.contains("    kv "), "{usage:?}");
}

#[test]
fn kv_get_over_a_unix_socket() {
    use std::io::{Read, Write};
    let dir = test_dir("cli-kv-unix");
    let socket = dir.join("http.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).expect("read");
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        let body = r#"[{"Key":"k","Value":"dmlhIHVuaXg=","Flags":0,"CreateIndex":1,"ModifyIndex":1,"LockIndex":0}]"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\nX-Consul-Index: 1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).expect("write");
        String::from_utf8_lossy(&request).into_owned()
    });
    let addr = format!("-http-addr=unix://{}", socket.display());
    let args = [
        "kv",
        "get",
        &addr,
        "-token=secret",
        "-datacenter=dc9",
        "-stale",
        "k",
    ];
    assert_eq!(ok(dead_addr(), &args), "via unix\n");
    let request = server.join().expect("server");
    assert!(
        request.starts_with("GET /v1/kv/k?stale&dc=dc9 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("\r\nX-Consul-Token: secret\r\n"),
        "{request}"
    );
}
