//! The catcher's SMTP server (RFC 5321, the subset a submitting client uses): one task per
//! connection, commands one line at a time (pipelined ones are answered in order), `DATA` read to
//! the lone `.` line with dot-unstuffing. Lines are capped (commands 2,048 bytes, text lines
//! 64 KiB) and so is a session's idle time (5 minutes), so a client cannot hold memory or a task.

use std::time::Duration;

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;

use super::{FaultMode, Mailbox};

const MAX_COMMAND: usize = 2_048;
const MAX_TEXT_LINE: usize = 64 * 1024;
const IDLE: Duration = Duration::from_secs(300);

/// Accepts connections on `listener` until `stop`. While the fault switch says `refuse`, the
/// port is closed (connections are refused) and opened again, on the same address, after.
pub async fn serve(listener: TcpListener, mailbox: Mailbox, stop: CancellationToken) {
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "SMTP listener has no address");
            return;
        }
    };
    let mut listener = Some(listener);
    loop {
        let Some(open) = listener.as_ref() else {
            // Closed: wait for the switch to change, then open the port again.
            let changed = mailbox.fault_changed();
            if mailbox.fault() == FaultMode::Refuse {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = changed => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            }
            match reopen(addr) {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, %addr, "reopening the SMTP port failed; trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        let changed = mailbox.fault_changed();
        if mailbox.fault() == FaultMode::Refuse {
            listener = None;
            continue;
        }
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            () = changed => continue,
            a = open.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let mailbox = mailbox.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        r = session(stream, &mailbox) => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "SMTP session ended");
                            }
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A listener on `addr` again (address reuse on, so connections of the closed one in
/// `TIME_WAIT` do not stand in the way).
fn reopen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// Why a line could not be read.
enum Line {
    /// The line, without its CRLF (or LF).
    Text(Vec<u8>),
    /// Longer than allowed.
    TooLong,
    /// The client hung up.
    Eof,
}

async fn read_line<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(IDLE, async {
        let mut limited = (&mut *r).take(u64::try_from(max + 2).unwrap_or(u64::MAX));
        limited.read_until(b'\n', &mut buf).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() != Some(&b'\n') {
        return Ok(if buf.len() > max {
            Line::TooLong
        } else {
            Line::Eof
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Line::Text(buf))
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: String) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.flush().await
}

/// The address inside `FROM:<a@b> SIZE=1` or `TO:<a@b>`, and the parameters after it.
fn path_arg<'a>(arg: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((&rest[..end], rest[end + 1..].trim()))
}

/// One SMTP session on `stream`.
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    mailbox: &Mailbox,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    if mailbox.take_fault(&[FaultMode::Down]) == FaultMode::Down {
        // A server that is down: the connection closes before any greeting.
        return write.shutdown().await;
    }
    let host = mailbox.options().hostname.clone();
    let max = mailbox.options().max_message_bytes;
    reply(
        &mut write,
        format!("220 {host} ESMTP Boxoffice mail catcher\r\n"),
    )
    .await?;
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let line = match read_line(&mut reader, MAX_COMMAND).await? {
            Line::Text(l) => l,
            Line::TooLong => {
                reply(&mut write, "500 5.5.2 line too long\r\n".into()).await?;
                return Ok(());
            }
            Line::Eof => return Ok(()),
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        let answer = match verb.as_str() {
            "EHLO" => {
                greeted = true;
                from = None;
                rcpts.clear();
                format!(
                    "250-{host}\r\n250-SIZE {max}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
                )
            }
            "HELO" => {
                greeted = true;
                from = None;
                rcpts.clear();
                format!("250 {host}\r\n")
            }
            "NOOP" => "250 2.0.0 OK\r\n".into(),
            "RSET" => {
                from = None;
                rcpts.clear();
                "250 2.0.0 OK\r\n".into()
            }
            "QUIT" => {
                reply(&mut write, "221 2.0.0 Bye\r\n".into()).await?;
                return write.shutdown().await;
            }
            "MAIL" if !greeted => "503 5.5.1 EHLO or HELO first\r\n".into(),
            "MAIL" if from.is_some() => "503 5.5.1 nested MAIL command\r\n".into(),
            "MAIL" => match path_arg(&arg, "FROM:") {
                None => "501 5.5.4 syntax: MAIL FROM:<address>\r\n".into(),
                Some((addr, params)) => {
                    let size = params.split_whitespace().find_map(|p| {
                        p.get(..5)
                            .filter(|k| k.eq_ignore_ascii_case("SIZE="))
                            .and_then(|_| p[5..].parse::<usize>().ok())
                    });
                    if size.is_some_and(|s| s > max) {
                        format!("552 5.3.4 message size exceeds {max} bytes\r\n")
                    } else {
                        from = Some(addr.to_owned());
                        rcpts.clear();
                        "250 2.1.0 OK\r\n".into()
                    }
                }
            },
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first\r\n".into(),
            "RCPT" => match path_arg(&arg, "TO:") {
                None => "501 5.5.4 syntax: RCPT TO:<address>\r\n".into(),
                Some(("", _)) => "501 5.1.3 empty recipient\r\n".into(),
                Some(_) if rcpts.len() >= mailbox.options().max_recipients => {
                    "452 4.5.3 too many recipients\r\n".into()
                }
                Some((addr, _)) => {
                    match mailbox.take_fault(&[FaultMode::Temporary, FaultMode::Permanent]) {
                        FaultMode::Temporary => {
                            "451 4.3.0 temporary failure (sandbox fault), try again later\r\n"
                                .into()
                        }
                        FaultMode::Permanent => {
                            "550 5.1.1 mailbox unavailable (sandbox fault)\r\n".into()
                        }
                        _ => {
                            rcpts.push(addr.to_owned());
                            "250 2.1.5 OK\r\n".into()
                        }
                    }
                }
            },
            "DATA" if rcpts.is_empty() => "503 5.5.1 RCPT first\r\n".into(),
            "DATA" => {
                reply(&mut write, "354 end data with <CR><LF>.<CR><LF>\r\n".into()).await?;
                let mut body = Vec::new();
                let mut too_big = false;
                loop {
                    let l = match read_line(&mut reader, MAX_TEXT_LINE).await? {
                        Line::Text(l) => l,
                        Line::TooLong => {
                            reply(&mut write, "500 5.5.2 line too long\r\n".into()).await?;
                            return Ok(());
                        }
                        Line::Eof => return Ok(()),
                    };
                    if l == b"." {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    let l = l.strip_prefix(b".").unwrap_or(&l);
                    if body.len() + l.len() + 2 > max {
                        too_big = true;
                    }
                    if !too_big {
                        body.extend_from_slice(l);
                        body.extend_from_slice(b"\r\n");
                    }
                }
                let sender = from.take().unwrap_or_default();
                let to = std::mem::take(&mut rcpts);
                if too_big {
                    format!("552 5.3.4 message size exceeds {max} bytes\r\n")
                } else {
                    let id = mailbox.store(sender, to, body);
                    format!("250 2.0.0 OK: queued as {id}\r\n")
                }
            }
            "STARTTLS" | "AUTH" => "502 5.5.1 not offered by the sandbox\r\n".into(),
            "" => "500 5.5.2 empty command\r\n".into(),
            _ => "502 5.5.2 command not recognized\r\n".into(),
        };
        reply(&mut write, answer).await?;
    }
}
