// The Node.js `ws` baseline for bench/: the broadcast server a Node developer would write.
// It speaks just enough of imgate's protocol for imgate-bench to drive it the same way:
// WebSocket at /acc (every request {seq,cmd} gets a 200 reply), and POST /broadcast (also
// reachable as /user/sendMessageAll) with a form body that pushes a `msg` to every client.
// Usage: node bench/ws-baseline.js PORT   (HTTP and WebSocket on the same port)
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 8090);
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || !['/broadcast', '/user/sendMessageAll'].includes(req.url)) {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const f = new URLSearchParams(body);
    const push = JSON.stringify({ seq: f.get('msgID') || '', cmd: 'msg', response: { code: 200,
      codeMsg: 'Ok', data: { target: '', type: 'text', msg: f.get('message') || '',
        from: f.get('userID') || '' } } });
    for (const ws of wss.clients) if (ws.readyState === 1) ws.send(push);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"code":200,"msg":"Success","data":{"sendResults":true}}');
  });
});

server.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/acc')) return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('message', (data) => {
      let r;
      try { r = JSON.parse(data); } catch { return; }
      ws.send(JSON.stringify({ seq: r.seq, cmd: r.cmd,
        response: { code: 200, codeMsg: 'Success', data: r.cmd === 'ping' ? 'pong' : null } }));
    });
  });
});

server.listen(port, '127.0.0.1', () => console.error(`ws baseline on 127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
