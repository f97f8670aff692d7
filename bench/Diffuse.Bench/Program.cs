using System.Globalization;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Evaluation.Features;
using Diffuse.Evaluation.SampleQuality;
using static TorchSharp.torch;

// Benchmarks and reference checks that are too long for the test suite. Results go to docs/ with the commit.
//   gaussian-csv <file.csv> [rows]   writes a 4-D correlated Gaussian table (known mean and covariance, not standardised)
//                                    and prints the exact NLL of the rows 'diffuse eval' holds out (nats/dim).
//   train-classifier <fashion-mnist|mnist|emoji|emoji-google> <out.safetensors> [epochs]
//                                    trains the feature classifier of the image metrics on the training split and
//                                    prints its test accuracy (recorded in the file's metadata). The emoji sets (32×32
//                                    RGB, 3,403 training images) train in batches of 64 with random horizontal flips.
//   mlp-speed [threads...]           training steps/s and denoiser evaluations/s of the default 2-D MLP, median of 5 runs.
//   unet-speed [threads...]          training images/s and denoiser evaluations/s of the reference U-Net (batch 128),
//                                    medians of 5 runs, with GFLOP/s; --bf16 also times a bfloat16 inference copy.
//   unet-profile [batch]             time per operation type (conv, GroupNorm, attention, optimizer) of a training step.
//   image-quality-example <features.safetensors>
//                                    the example table of docs/metrics.md: Gaussian noise images clamped to [−1, 1]
//                                    (1,000 "samples" and 1,000 floor images of the reference's distribution, 2,000
//                                    reference images) through a feature network, then the same samples scaled by 0.8.
//   kd-spread <features.safetensors> [pairs]
//                                    the kernel distance of independent pairs of 1,000 noise images each (one
//                                    distribution): its real scatter at N = 1,000, beside the sd over subsets it reports.
//   editing-inversion [per-class]  encode → decode PSNR and max error against steps on the shipped Fashion-MNIST model
//                                    (default 5 test images per class), DDIM and the σ-space solvers, guidance 1 and 1.5.
//   editing-class [per-class]      class edits by inversion (encode with a, decode with a + 5 mod 10) against SDEdit at
//                                    strengths 0.3/0.5/0.7: classifier accuracy for the target class and PSNR to the source.
//   editing-inpaint [per-class] [R] inpainting of the centre 14×14 and the lower half, replacement against RePaint:
//                                    accuracy for the source's class and FD of the completions beside the sources' FD.
//   serve-load <url> <model> <n> <levels> [json]   throughput and p50/p99 latency of a running diffuse serve at each
//                                    concurrency level (see bench/serve-fashion-mnist.sh); json is one body, or an array of
//                                    bodies taken in turn (a mixed workload of several settings).
//   serve-memory <url> <model> <n> <pid> [c] [json]  the server's RSS over n requests.
//   serve-batch-rate <model> [batches]  one guided network evaluation at each batch size: what batching can gain.
//   unet-memory [steps] [batch]      process RSS over a long training run of the reference U-Net (default 1000 steps, batch 16).
//                                    The unet-* commands take --channels-last (convolutions on channels-last feature maps)
//                                    and --keep-freed (NativeAllocator.KeepFreedMemory) to measure what each option brings.
return args.FirstOrDefault() switch
{
    "gaussian-csv" => GaussianCsv(args.Skip(1).ToArray()),
    "mlp-speed" => MlpSpeed(args.Skip(1).ToArray()),
    "train-classifier" => TrainClassifier(args.Skip(1).ToArray()),
    "unet-speed" => UNetBench.Speed(args.Skip(1).ToArray()),
    "unet-profile" => UNetProfile.Run(args.Skip(1).ToArray()),
    "unet-memory" => UNetBench.Memory(args.Skip(1).ToArray()),
    "image-quality-example" => ImageQualityExample(args.Skip(1).ToArray()),
    "kd-spread" => KdSpread(args.Skip(1).ToArray()),
    "editing-inversion" => EditingBench.Inversion(args.Skip(1).ToArray()),
    "editing-class" => EditingBench.ClassEdits(args.Skip(1).ToArray()),
    "editing-inpaint" => EditingBench.Inpainting(args.Skip(1).ToArray()),
    "serve-load" => ServeLoad.Load(args.Skip(1).ToArray()),
    "serve-memory" => ServeLoad.Memory(args.Skip(1).ToArray()),
    "serve-batch-rate" => ServeLoad.BatchRate(args.Skip(1).ToArray()),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Diffuse.Bench gaussian-csv <file.csv> [rows] | train-classifier <fashion-mnist|mnist|emoji|emoji-google> <out.safetensors> [epochs] | mlp-speed [threads...] | unet-speed [threads...] | unet-profile [batch] | unet-memory [steps] [batch] | image-quality-example <features.safetensors> | kd-spread <features.safetensors> [pairs] | editing-inversion [per-class] | editing-class [per-class] | editing-inpaint [per-class] [R]");
    return 2;
}

static int GaussianCsv(string[] args)
{
    if (args.Length < 1) return Usage();
    string path = args[0];
    int rows = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20_000;
    double[] mean = { 1.0, -2.0, 3.0, 0.5 };
    // Σ = L·Lᵀ with a lower-triangular L: scales from 0.5 to 3 and strong correlations.
    double[,] l =
    {
        { 2.0, 0, 0, 0 },
        { 1.2, 0.5, 0, 0 },
        { -0.6, 0.3, 3.0, 0 },
        { 0.2, -0.4, 0.9, 0.7 },
    };
    const int d = 4;
    var rng = new Random(12345);
    var values = new float[rows, d];
    for (int i = 0; i < rows; i++)
    {
        var eps = new double[d];
        for (int k = 0; k < d; k++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            eps[k] = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        for (int r = 0; r < d; r++)
        {
            double v = mean[r];
            for (int c = 0; c <= r; c++) v += l[r, c] * eps[c];
            values[i, r] = (float)v;
        }
    }
    CsvTable.Save(path, new[] { "a", "b", "c", "e" }, values);

    // Exact NLL of the held-out rows as 'diffuse train --holdout 0.1' splits them, on the float32 values written.
    var table = CsvTable.Load(path);
    using var all = table.ToTensor();
    var (train, held) = TabularSource.Split(all, 0.1);
    double logDet = 0;
    for (int k = 0; k < d; k++) logDet += 2 * Math.Log(l[k, k]);
    var x = held.to_type(ScalarType.Float64).data<double>().ToArray();
    int n = (int)held.shape[0];
    double total = 0, totalSq = 0;
    for (int i = 0; i < n; i++)
    {
        // Mahalanobis distance by forward substitution: solve L·y = x − μ, then ‖y‖².
        var y = new double[d];
        double maha = 0;
        for (int r = 0; r < d; r++)
        {
            double v = x[i * d + r] - mean[r];
            for (int c = 0; c < r; c++) v -= l[r, c] * y[c];
            y[r] = v / l[r, r];
            maha += y[r] * y[r];
        }
        double nll = 0.5 * (d * Math.Log(2 * Math.PI) + logDet + maha) / d;
        total += nll;
        totalSq += nll * nll;
    }
    double avg = total / n, se = Math.Sqrt((totalSq / n - avg * avg) / n);
    Console.WriteLine($"wrote {rows} rows to {path}");
    Console.WriteLine($"exact NLL of the {n} held-out rows: {avg.ToString("F4", CultureInfo.InvariantCulture)} ± {se.ToString("F4", CultureInfo.InvariantCulture)} nats/dim (differential entropy {(0.5 * (d * Math.Log(2 * Math.PI * Math.E) + logDet) / d).ToString("F4", CultureInfo.InvariantCulture)})");
    train.Dispose();
    held.Dispose();
    return 0;
}

static int MlpSpeed(string[] args)
{
    var threadCounts = args.Length > 0 ? args.Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray() : new[] { 1, 2 };
    using var data = ToyData.Sample(ToyDistribution.Moons, 20_000, 0);
    foreach (int threads in threadCounts)
    {
        set_num_threads(threads);
        var trainRates = new List<double>();
        var sampleRates = new List<double>();
        for (int run = 0; run < 5; run++)
        {
            using var trainer = Diffuse.Training.Trainer.Create(data, "moons", new Diffuse.Configuration.TrainingConfig(Steps: 1000, Seed: (ulong)run));
            for (int i = 0; i < 20; i++) trainer.TrainStep();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < 200; i++) trainer.TrainStep();
            trainRates.Add(200 / clock.Elapsed.TotalSeconds);
            using var model = trainer.ToModel();
            clock.Restart();
            model.Sample(2000, 1, new Diffuse.Sampling.SamplerOptions(Diffuse.Sampling.SamplerKind.Ddim, 100)).Dispose();
            sampleRates.Add(100 * 2000 / clock.Elapsed.TotalSeconds);
        }
        double Median(List<double> v) { v.Sort(); return v[v.Count / 2]; }
        Console.WriteLine($"threads {threads}: training {Median(trainRates):F1} steps/s (batch 512, {Median(trainRates) * 512:F0} examples/s); " +
            $"sampling {Median(sampleRates):F0} denoiser evaluations/s (batch 2000); medians of 5 runs");
    }
    return 0;
}

static int ImageQualityExample(string[] args)
{
    if (args.Length < 1) return Usage();
    set_num_threads(1);
    var network = Diffuse.Evaluation.Features.FeatureNetworks.Load(args[0]);
    using var scope = NewDisposeScope();
    Tensor Noise(ulong seed, int count) => Diffuse.Randomness.SeededNoise.Normal(seed, 0, 0, count, new long[] { 1, 28, 28 }).clamp(-1, 1);
    var reference = Noise(1, 2000);
    var floor = Noise(2, 1000);
    var samples = Noise(3, 1000);
    var same = Diffuse.Evaluation.SampleQuality.ImageQualityReport.Evaluate(network, samples, null, reference, floor, null);
    Console.Write(same.ToTable());
    var scaled = Diffuse.Evaluation.SampleQuality.ImageQualityReport.Evaluate(network, samples * 0.8, null, reference, floor, null);
    Console.WriteLine("scaled by 0.8:");
    Console.Write(scaled.ToTable());
    return 0;
}

static int KdSpread(string[] args)
{
    if (args.Length < 1) return Usage();
    set_num_threads(1);
    var network = Diffuse.Evaluation.Features.FeatureNetworks.Load(args[0]);
    int pairs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 8, m = 1000;
    using var scope = NewDisposeScope();
    var features = network.Features(Diffuse.Randomness.SeededNoise.Normal(7, 0, 0, 2 * pairs * m, new long[] { 1, 28, 28 }).clamp(-1, 1));
    var values = new List<double>();
    for (int p = 0; p < pairs; p++)
    {
        var kid = Diffuse.Evaluation.SampleQuality.FeatureMetrics.KernelInceptionDistance(features.narrow(0, 2 * p * m, m), features.narrow(0, (2 * p + 1) * m, m));
        values.Add(kid.Mean);
        Console.WriteLine($"pair {p}: KD {kid.Mean:G4} ± {kid.StdError:G2} (standard error), sd over subsets {kid.StdDev:G2}");
    }
    double mean = values.Average();
    Console.WriteLine($"spread over {pairs} independent pairs: {Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (pairs - 1)):G4}");
    return 0;
}

static int TrainClassifier(string[] args)
{
    if (args.Length < 2) return Usage();
    string name = args[0], path = args[1];
    int epochs = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 8;
    set_num_threads(1);
    manual_seed(0);
    bool emoji = Diffuse.Data.Images.EmojiDatasets.IsKnown(name);
    Diffuse.Data.Images.ImageDataset Load(Diffuse.Data.Images.DatasetSplit split) => emoji
        ? Diffuse.Data.Images.EmojiDatasets.Load(name, split, log: Console.WriteLine)
        : Diffuse.Data.Images.NpmDatasets.Load(name, split, log: Console.WriteLine);
    using var train = Load(Diffuse.Data.Images.DatasetSplit.Train);
    using var test = Load(Diffuse.Data.Images.DatasetSplit.Test);
    // The small emoji sets are flipped at random (seeded by the batch number), as their diffusion models are trained.
    long batchNumber = 0;
    Tensor Inputs(Tensor batch)
    {
        using var x = Diffuse.Data.Images.ImageDataset.ToModelRange(batch);
        return emoji ? Diffuse.Data.Images.ImageDataset.RandomHorizontalFlip(x, seed: 0, step: batchNumber++) : x.clone();
    }
    var classifier = new Diffuse.Evaluation.Features.FeatureClassifier(new Diffuse.Evaluation.Features.FeatureClassifierConfig(train.Channels, train.Height, train.Width, train.ClassNames.Length));
    using var labels = tensor(train.Labels!);
    var clock = System.Diagnostics.Stopwatch.StartNew();
    double loss = classifier.Train(train.Images, labels, Inputs, epochs, batchSize: emoji ? 64 : 128, learningRate: 2e-3, seed: 0,
        (step, total, value) => { if (step % 200 == 0 || step == total) Console.WriteLine($"step {step}/{total} loss {value:F4} ({clock.Elapsed.TotalSeconds:F0} s)"); });
    using var testImages = Diffuse.Data.Images.ImageDataset.ToModelRange(test.Images);
    var (_, logits) = classifier.Embed(testImages);
    using var testLabels = tensor(test.Labels!);
    double accuracy = Diffuse.Evaluation.SampleQuality.FeatureMetrics.Accuracy(logits, testLabels);
    classifier.Save(path, new Dictionary<string, string>
    {
        ["dataset"] = name,
        ["test_accuracy"] = accuracy.ToString("F4", CultureInfo.InvariantCulture),
        ["epochs"] = epochs.ToString(CultureInfo.InvariantCulture),
        ["augmentation"] = emoji ? "horizontal flips" : "none",
        ["train_seconds"] = clock.Elapsed.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture),
    });
    Console.WriteLine($"{name}: test accuracy {accuracy:P2} on {test.Count} images after {epochs} epochs ({clock.Elapsed.TotalSeconds:F0} s); last-epoch loss {loss:F4}; wrote {path} ({new FileInfo(path).Length / 1024} KiB)");
    return 0;
}
