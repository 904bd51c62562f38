// The openai Node SDK against one base URL: prints what each call returned, as JSON.
// tests/clients/test_node_sdk.py runs it against the gateway and against the teacher directly.
import OpenAI from "openai";

const [baseURL, tag, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-test", maxRetries: 0 });
const input = "Hi, I was charged twice for my invoice. This is urgent.";
const messages = [{ role: "user", content: input }];
const metadata = { case: tag };
const tool = {
  type: "function",
  name: "lookup_invoice",
  parameters: {
    type: "object",
    properties: { query: { type: "string" } },
    required: ["query"],
    additionalProperties: false,
  },
  strict: true,
};
const drop = ({ created, created_at, ...rest }) => rest; // clocks differ between two calls

const out = {};
const chat = await client.chat.completions.create({ model, messages, metadata });
out.chat = drop(chat);
const { data: raw, response } = await client.chat.completions
  .create({ model, messages })
  .withResponse();
out.rawContent = raw.choices[0].message.content;
out.distillHeader = response.headers.get("x-distill-request-id") !== null;

const stream = await client.chat.completions.create({ model, messages, stream: true });
out.chatStream = "";
for await (const chunk of stream) out.chatStream += chunk.choices[0]?.delta?.content ?? "";

const helper = client.chat.completions.stream({ model, messages, logprobs: true });
out.chatHelper = drop(await helper.finalChatCompletion());

out.responses = drop(await client.responses.create({ model, input, metadata }));
const events = [];
const rstream = client.responses.stream({ model, input });
for await (const event of rstream) events.push(event.type);
out.responseEvents = events;
out.responsesStream = drop(await rstream.finalResponse());

const first = await client.responses.create({ model, input, tools: [tool] });
const call = first.output[0];
const second = await client.responses.create({
  model,
  tools: [tool],
  input: [
    { role: "user", content: input },
    call,
    { type: "function_call_output", call_id: call.call_id, output: "INV-7 paid twice" },
  ],
});
out.toolCall = { name: call.name, arguments: call.arguments, answer: second.output_text };
console.log(JSON.stringify(out));
