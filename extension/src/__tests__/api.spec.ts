import { ServerConnection } from '@jupyterlab/services';

import { ApiError, describeProblem, NbmeshApi, toProblems } from '../api';

interface ISent {
  url: string;
  method: string;
  body: string | null;
  contentType: string | null;
}

/** A fetch that records each request and answers from a script. */
function scripted(answers: { status: number; body?: unknown }[]) {
  const sent: ISent[] = [];
  const fetch = async (input: RequestInfo | URL) => {
    const request = input as Request;
    sent.push({
      // ServerConnection appends a cache-busting timestamp; it is not ours to test.
      url: request.url.replace(/[?&]\d+$/, ''),
      method: request.method,
      body: request.method === 'GET' ? null : await request.text(),
      contentType: request.headers.get('Content-Type')
    });
    const answer = answers.shift()!;
    const text =
      answer.body === undefined
        ? null
        : typeof answer.body === 'string'
          ? answer.body
          : JSON.stringify(answer.body);
    return new Response(text, { status: answer.status, statusText: 'status' });
  };
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://lab.test/base/',
    fetch: fetch as typeof window.fetch,
    Request,
    Headers
  });
  return { api: new NbmeshApi(settings), sent };
}

describe('NbmeshApi', () => {
  it('reads the catalog through the server extension', async () => {
    const { api, sent } = scripted([
      { status: 200, body: { products: [{ name: 'a', version: 1 }] } }
    ]);
    await expect(api.products()).resolves.toEqual([{ name: 'a', version: 1 }]);
    expect(sent[0].url).toBe('http://lab.test/base/nbmesh/api/products');
    expect(sent[0].method).toBe('GET');
  });

  it('publishes the notebook JSON with PUT and keeps name@version readable', async () => {
    const { api, sent } = scripted([
      { status: 201, body: { name: 'sales', version: 2 } },
      { status: 200, body: { name: 'sales', version: 1 } }
    ]);
    const notebook = { nbformat: 4, cells: [] };
    await expect(api.publish('sales', notebook)).resolves.toEqual({ name: 'sales', version: 2 });
    expect(sent[0]).toEqual({
      url: 'http://lab.test/base/nbmesh/api/products/sales',
      method: 'PUT',
      body: JSON.stringify(notebook),
      contentType: 'application/json'
    });
    await api.product('sales@1');
    expect(sent[1].url).toBe('http://lab.test/base/nbmesh/api/products/sales@1');
  });

  it('invokes with the parameters as the body and asks for recent runs with a limit', async () => {
    const run = { run_id: 'r1', status: 'succeeded', result: { rows: 3 } };
    const { api, sent } = scripted([
      { status: 200, body: run },
      { status: 200, body: { runs: [run] } }
    ]);
    await expect(api.invoke('sales', { region: 'EU' })).resolves.toEqual(run);
    expect(sent[0].url).toBe('http://lab.test/base/nbmesh/api/products/sales/invoke');
    expect(sent[0].method).toBe('POST');
    expect(JSON.parse(sent[0].body!)).toEqual({ region: 'EU' });
    await expect(api.runs('sales', 5)).resolves.toEqual([run]);
    expect(sent[1].url).toBe('http://lab.test/base/nbmesh/api/products/sales/runs?limit=5');
  });

  it('turns a 422 into every problem, whether details are strings or objects', async () => {
    const { api } = scripted([
      {
        status: 422,
        body: {
          error: 'The notebook is not a valid data product.',
          details: [
            'No cell is tagged output.',
            { cell: 2, message: 'Parameter x has no default.' },
            { cell: null, message: 'Bad cron.' },
            { cell: 3, message: 'The output cell 4 must end with an expression.' },
            { cell: 4, message: 'Cells 3, 5 are all tagged output.' }
          ]
        }
      }
    ]);
    const error: ApiError = await api.publish('x', {}).catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(422);
    expect(error.message).toBe('The notebook is not a valid data product.');
    expect(error.problems).toEqual([
      { cell: null, message: 'No cell is tagged output.' },
      { cell: 2, message: 'Parameter x has no default.' },
      { cell: null, message: 'Bad cron.' },
      { cell: 3, message: 'The output cell 4 must end with an expression.' },
      { cell: 4, message: 'Cells 3, 5 are all tagged output.' }
    ]);
    // `cell` is 0-based, messages number cells from 1 and may name the cell: never say it twice.
    expect(error.problems.map(describeProblem)).toEqual([
      'No cell is tagged output.',
      'Cell 3: Parameter x has no default.',
      'Bad cron.',
      'The output cell 4 must end with an expression.',
      'Cells 3, 5 are all tagged output.'
    ]);
  });

  it('keeps the run of a failed or timed-out invocation', async () => {
    const failed = {
      run_id: 'r2',
      status: 'failed',
      error: { ename: 'ValueError', evalue: 'boom', traceback: ['line'] }
    };
    const { api } = scripted([
      { status: 500, body: failed },
      { status: 504, body: { run_id: 'r3', status: 'timed_out', error: null } }
    ]);
    const error: ApiError = await api.invoke('x', {}).catch(e => e);
    expect(error.status).toBe(500);
    expect(error.message).toBe('ValueError: boom');
    expect(error.run).toEqual(failed);
    const timeout: ApiError = await api.invoke('x', {}).catch(e => e);
    expect(timeout.status).toBe(504);
    expect(timeout.message).toBe('The run ended timed_out.');
  });

  it('reports an error body, or the raw text when the answer is not JSON', async () => {
    const { api } = scripted([
      { status: 502, body: { error: 'No nbmesh runtime answers at http://127.0.0.1:8765.' } },
      { status: 500, body: 'Internal Server Error' },
      { status: 404 }
    ]);
    await expect(api.products()).rejects.toMatchObject({
      status: 502,
      message: 'No nbmesh runtime answers at http://127.0.0.1:8765.',
      problems: []
    });
    await expect(api.products()).rejects.toMatchObject({
      status: 500,
      message: 'Internal Server Error'
    });
    await expect(api.run('nope')).rejects.toMatchObject({ status: 404 });
  });
});

describe('toProblems', () => {
  it('accepts anything the runtime may send', () => {
    expect(toProblems(undefined)).toEqual([]);
    expect(toProblems([{ cell: 0 }, 7])).toEqual([
      { cell: 0, message: '{"cell":0}' },
      { cell: null, message: '7' }
    ]);
  });
});
