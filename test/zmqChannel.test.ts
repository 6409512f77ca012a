/**
 * ZmqClient.send's timeout (ClientChannel): it counts the wait behind the channel's earlier sends.
 * With the coordinator gone, an unbounded send (a worker's RESULT) waits for it forever; a bounded
 * one queued behind it (a heartbeat, the goodbye on SIGTERM) must still give up in time, and must
 * not go out later. Real ZeroMQ sockets on loopback, closed after the test.
 */
import { ZmqClient, ZmqServer } from '../src/transport/zmq';
import { freePort } from './helpers/cli';

const FAST = { lingerMs: 0, heartbeatMs: 500 };

describe('ZmqClient.send with a timeout, queued behind a send that waits for an absent peer', () => {
  const open: { close(): void }[] = [];
  afterAll(() => { for (const s of open) s.close(); });

  it('rejects (EAGAIN) at its timeout; it is not sent once the peer comes, while the earlier send and later ones are', async () => {
    const port = await freePort();
    const client = new ZmqClient('w', FAST);
    open.push(client);
    client.connect(`tcp://127.0.0.1:${port}`);
    const first = client.send([Buffer.from('result')]); // no timeout: waits for a peer
    const t0 = Date.now();
    await expect(client.send([Buffer.from('heartbeat')], 300)).rejects.toMatchObject({ code: 'EAGAIN' });
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(5000); // honoured, not waiting for a peer (bounded loosely: a busy machine)

    const server = new ZmqServer(FAST);
    open.push(server);
    await server.bind(`tcp://127.0.0.1:${port}`);
    await first;
    await client.send([Buffer.from('after')], 5000);
    const received = [(await server.receive())!.frames[0].toString(), (await server.receive())!.frames[0].toString()];
    expect(received).toEqual(['result', 'after']);
  }, 20_000);
});
