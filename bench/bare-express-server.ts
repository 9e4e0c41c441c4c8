// The baseline for the hot-path benchmark: a bare Express 5 endpoint with express.json() that
// returns a fixed 201. Run as its own process, as the Stockhold API is, so both get a core.
import express from 'express';

const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.use(express.json());
const fixed = { id: 'AAAAAAAAAAAAAAAAAAAAAA', status: 'pending' };
app.post('/v1/reservations', (_request, response) => {
  response.status(201).json(fixed);
});
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.send?.({ port: typeof address === 'object' && address !== null ? address.port : 0 });
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
