using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

/// <summary>
/// Load against a running <c>diffuse serve</c>: throughput and latency at several concurrency levels, and the server's
/// memory over many requests. Each request is one sample request with its own seed (and class, for conditional models).
/// </summary>
internal static class ServeLoad
{
    /// <summary>
    /// serve-load &lt;url&gt; &lt;model&gt; &lt;requests per level&gt; &lt;levels&gt; [json]: for each concurrency level c, c clients send
    /// requests back to back until the level's requests are done (after a warm-up of c requests); prints images/s and
    /// the 50th and 99th percentile latency.
    /// </summary>
    public static int Load(string[] args)
    {
        if (args.Length < 4) return Usage();
        var client = Client(args[0]);
        string model = args[1];
        int perLevel = int.Parse(args[2], CultureInfo.InvariantCulture);
        int[] levels = args[3].Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        string body = args.Length > 4 ? args[4] : """{"count":1,"sampler":"dpm++2m","steps":20}""";
        Console.WriteLine($"model {model}, request {body}, {perLevel} requests per level (at least 4 per client)");
        Console.WriteLine("| concurrency | requests | images/s | p50 latency (s) | p99 latency (s) | mean batch (samples) |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        int seed = 0;
        foreach (int c in levels)
        {
            Run(client, model, body, c, c, ref seed);   // warm-up: every client once
            int total = Math.Max(perLevel, 4 * c);
            var clock = Stopwatch.StartNew();
            var (latencies, images, batches) = Run(client, model, body, c, total, ref seed);
            double seconds = clock.Elapsed.TotalSeconds;
            Array.Sort(latencies);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c} | {total} | {images / seconds:F2} | {Percentile(latencies, 0.50):F2} | {Percentile(latencies, 0.99):F2} | {batches.Average():F1} |"));
        }
        return 0;
    }

    /// <summary>
    /// serve-memory &lt;url&gt; &lt;model&gt; &lt;requests&gt; &lt;server pid&gt; [concurrency] [json]: sends the requests and prints the server's
    /// resident set size (VmRSS) before, every tenth of the way and after.
    /// </summary>
    public static int Memory(string[] args)
    {
        if (args.Length < 4) return Usage();
        var client = Client(args[0]);
        string model = args[1];
        int total = int.Parse(args[2], CultureInfo.InvariantCulture);
        int pid = int.Parse(args[3], CultureInfo.InvariantCulture);
        int concurrency = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 4;
        string body = args.Length > 5 ? args[5] : """{"count":1,"sampler":"euler","steps":2}""";
        Console.WriteLine($"model {model}, request {body}, {total} requests from {concurrency} clients");
        Console.WriteLine("| requests done | server RSS (MiB) |");
        Console.WriteLine("| --- | --- |");
        Console.WriteLine($"| 0 | {Rss(pid):F1} |");
        int seed = 0, done = 0, step = Math.Max(1, total / 10);
        while (done < total)
        {
            int n = Math.Min(step, total - done);
            Run(client, model, body, concurrency, n, ref seed);
            done += n;
            Console.WriteLine($"| {done} | {Rss(pid):F1} |");
        }
        return 0;
    }

    /// <summary>
    /// serve-batch-rate &lt;model&gt; [batches]: what batching can gain at most: one guided network evaluation (the unit of
    /// a sampler step) at each batch size, as images per second and per-image milliseconds (median of 5 runs of 5 calls).
    /// </summary>
    public static int BatchRate(string[] args)
    {
        if (args.Length < 1) return Usage();
        int[] sizes = args.Length > 1 ? args[1].Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray() : new[] { 1, 2, 4, 8, 16, 32, 64 };
        using var model = Diffuse.DiffusionModel.Load(args[0]);
        Diffuse.Runtime.TorchThreads.Apply(model.IsImage);
        Console.WriteLine($"{args[0]}: one guided network evaluation per batch, {TorchSharp.torch.get_num_threads()} thread(s), load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine("| batch | ms per evaluation | ms per image | images/s per evaluation step |");
        Console.WriteLine("| --- | --- | --- | --- |");
        using var inference = TorchSharp.torch.inference_mode();
        foreach (int b in sizes)
        {
            var times = new List<double>();
            for (int run = 0; run < 6; run++)
            {
                using var scope = TorchSharp.torch.NewDisposeScope();
                var labels = model.ClassCount > 0 ? Enumerable.Range(0, b).Select(i => (long)(i % model.ClassCount)).ToArray() : null;
                var denoiser = Diffuse.Denoisers.SigmaDenoiser.From(model.DenoiserFor(labels, Diffuse.Sampling.SamplingDefaults.Guidance), model.Schedule);
                var z = TorchSharp.torch.randn(new[] { (long)b }.Concat(model.ExampleShape).ToArray());
                var clock = Stopwatch.StartNew();
                for (int k = 0; k < 5; k++) denoiser.DenoiseAtSigma(z, 1.0);
                if (run > 0) times.Add(clock.Elapsed.TotalMilliseconds / 5);   // the first run warms up
            }
            times.Sort();
            double ms = times[times.Count / 2];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {b} | {ms:F1} | {ms / b:F2} | {1000 * b / ms:F0} |"));
        }
        return 0;
    }

    /// <summary>
    /// The body of request <paramref name="i"/>: <paramref name="body"/> itself, or for a JSON array of bodies (a mixed
    /// workload of several settings) its element i modulo their number.
    /// </summary>
    private static Dictionary<string, JsonElement> Body(string body, int i)
    {
        using var document = JsonDocument.Parse(body);
        var element = document.RootElement.ValueKind == JsonValueKind.Array
            ? document.RootElement[i % document.RootElement.GetArrayLength()]
            : document.RootElement;
        return JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(element.GetRawText())!;
    }

    private static (double[] Latencies, long Images, List<int> Batches) Run(HttpClient client, string model, string body, int concurrency, int total, ref int seed)
    {
        int next = 0, first = seed;
        seed += total;
        var latencies = new double[total];
        var batches = new List<int>();
        long images = 0;
        var classes = ClassCount(client, model);
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next) - 1;
                if (i >= total) return;
                var request = Body(body, i).ToDictionary(kv => kv.Key, kv => (object)kv.Value);
                request["seed"] = first + i;
                if (classes > 0 && !request.ContainsKey("class")) request["class"] = (first + i) % classes;
                var clock = Stopwatch.StartNew();
                using var response = await client.PostAsync($"/v1/models/{model}/samples",
                    new StringContent(JsonSerializer.Serialize(request), Encoding.UTF8, "application/json"));
                var bytes = await response.Content.ReadAsByteArrayAsync();
                if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{(int)response.StatusCode}: {Encoding.UTF8.GetString(bytes)}");
                latencies[i] = clock.Elapsed.TotalSeconds;
                int batch = int.Parse(response.Headers.GetValues("X-Diffuse-Batch").Single(), CultureInfo.InvariantCulture);
                lock (batches) batches.Add(batch);
                Interlocked.Add(ref images, request.TryGetValue("count", out var c) ? ((JsonElement)c).GetInt32() : 1);
            }
        })).ToArray();
        Task.WaitAll(workers);
        return (latencies, images, batches);
    }

    private static int ClassCount(HttpClient client, string model)
    {
        using var json = JsonDocument.Parse(client.GetStringAsync($"/v1/models/{model}").GetAwaiter().GetResult());
        return json.RootElement.GetProperty("classes").GetArrayLength();
    }

    private static HttpClient Client(string url)
    {
        var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1024 }) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(30) };
        if (Environment.GetEnvironmentVariable("DIFFUSE_API_KEY") is { Length: > 0 } key) client.DefaultRequestHeaders.Add("X-Api-Key", key);
        return client;
    }

    private static double Percentile(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];

    private static double Rss(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        return double.NaN;
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: Diffuse.Bench serve-load <url> <model> <requests per level> <levels, e.g. 1,4,16,64> [request json] | serve-memory <url> <model> <requests> <server pid> [concurrency] [request json] | serve-batch-rate <model> [batches]");
        return 2;
    }
}
