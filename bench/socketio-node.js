// The Socket.IO cluster peer for bench/cluster.sh: one Socket.IO 4 node with the Redis adapter,
// written the way its documentation shows, so that N of these on one Redis are the cluster a
// Node developer would deploy. It does for imgate-bench (--proto socketio) what an imgate node
// does:
//
//   WebSocket  /socket.io/?EIO=4&transport=websocket&userID=U&appID=A  (WebSocket only, no
//              long-polling). The room and user come from the query, not from a login event:
//              the socket joins the rooms "app:A" and "user:U" in the connection handler, before
//              its CONNECT reply 40{"sid":...} is written, so a client that has that reply is in
//              both rooms on every node. Without userID (the bench's ping probes) it joins none.
//              Event "ping" with an ack: answered at once (the probes' round trip).
//   HTTP POST  /user/sendMessageAll  form appID, message, userID (the sender), msgID: emits
//              "msg" to the room app:<appID> except user:<userID>, through the adapter, so the
//              members on every node get it;
//              /user/sendMessage  form appID, userID (the receiver), message, msgID: emits "msg"
//              to user:<userID>. Both answer {"code":200,"msg":"Success","data":
//              {"sendResults":true}} like imgate. sendResults is always true: a Socket.IO
//              broadcast does not know whether anyone on another node received it (finding out
//              takes a fetchSockets round trip to every node).
//   The event: 42["msg",{"seq":msgID,"target":"","type":"text","msg":message,"from":userID}]
//              (target is the receiver for sendMessage), imgate's push data without its envelope.
//
// Usage: node bench/socketio-node.js PORT REDIS_PORT [NODE_ID]
//        (or env PORT, REDIS_PORT, NODE_ID; HTTP and WebSocket on the same port, 127.0.0.1;
//        Redis at 127.0.0.1:REDIS_PORT)
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const port = Number(process.argv[2] || process.env.PORT || 8090);
const redisPort = Number(process.argv[3] || process.env.REDIS_PORT || 6379);
const nodeId = process.argv[4] || process.env.NODE_ID || `sio-${port}`;

const server = http.createServer();
const io = new Server(server, {
  transports: ['websocket'], // the bench connects WebSocket-only, as production clients often do
  serveClient: false,
  perMessageDeflate: false, // as imgate and the ws baseline: no compression
});

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

// Socket.IO answers its own path; everything else is the HTTP API.
server.on('request', (req, res) => {
  if (req.url.startsWith('/socket.io/')) return;
  const route = req.url.split('?')[0];
  if (route !== '/user/sendMessageAll' && route !== '/user/sendMessage') {
    reply(res, 404, { code: 404, msg: 'not found', data: null });
    return;
  }
  if (req.method !== 'POST') {
    reply(res, 405, { code: 405, msg: 'method not allowed', data: null });
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const f = new URLSearchParams(body);
    const appID = f.get('appID');
    const userID = f.get('userID') || '';
    const message = f.get('message');
    if (!appID || !/^[0-9]+$/.test(appID) || message === null ||
        (route === '/user/sendMessage' && !userID)) {
      reply(res, 400, { code: 400, msg: 'appID, message (and userID) required', data: null });
      return;
    }
    const direct = route === '/user/sendMessage';
    const push = { seq: f.get('msgID') || '', target: direct ? userID : '', type: 'text',
      msg: message, from: userID };
    if (direct) io.to(`user:${userID}`).emit('msg', push);
    else io.to(`app:${appID}`).except(`user:${userID}`).emit('msg', push);
    reply(res, 200, { code: 200, msg: 'Success', data: { sendResults: true } });
  });
});

io.on('connection', (socket) => {
  const q = socket.handshake.query;
  if (typeof q.userID === 'string' && q.userID) {
    socket.join([`app:${typeof q.appID === 'string' && q.appID ? q.appID : '101'}`,
      `user:${q.userID}`]);
  }
  socket.on('ping', (ack) => { if (typeof ack === 'function') ack(); });
});

async function main() {
  const pub = createClient({ url: `redis://127.0.0.1:${redisPort}` });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on('error', (e) => console.error(`${nodeId}: redis: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
  // Backlog 4096, as imgate asks for: with Node's default of 511 connect bursts overflow the
  // accept queue and the dropped SYNs come back a second later.
  server.listen(port, '127.0.0.1', 4096, () =>
    console.error(`${nodeId}: socket.io on 127.0.0.1:${port}, redis 127.0.0.1:${redisPort}`));
}

main().catch((e) => {
  console.error(`${nodeId}: ${e.message}`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
