using System.Runtime.InteropServices;
using Diffuse.Cli.Commands;
using Diffuse.Distributed;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Diffuse.Cli;

/// <summary>The <c>diffuse</c> command: a thin layer over the Diffuse library.</summary>
public static class Program
{
    /// <summary>
    /// Entry point. Under <c>mpiexec</c> every process joins the MPI job; a process that fails prints its error and
    /// ends the whole job (MPI_Abort) so that no rank waits forever; a successful one finalises MPI.
    /// </summary>
    public static int Main(string[] args)
    {
        ICollective collective;
        try
        {
            collective = Collective.FromEnvironment();
        }
        catch (DiffuseException e)
        {
            Console.Error.WriteLine($"error: {LibraryFlags.Message(e)}");
            return 1;
        }
        // SIGINT (Ctrl-C) and SIGTERM stop a command after its current step: training writes a checkpoint of it, other
        // commands keep what is complete and remove their temporaries; a second signal ends the process at once (the
        // last complete checkpoint stands, since every checkpoint is written as one atomic unit). Under mpiexec the
        // ranks cannot agree on a step to stop at, so a signal ends them at once.
        using var cancel = new CancellationTokenSource();
        int signalCode = 0;
        void Stop(PosixSignalContext context, int code)
        {
            if (cancel.IsCancellationRequested || collective.Size > 1) return;   // default action: end now
            context.Cancel = true;
            signalCode = code;
            Console.Error.WriteLine($"{Environment.NewLine}stopping after the current step ({(code == 130 ? "Ctrl-C" : "SIGTERM")} again to stop at once) ...");
            cancel.Cancel();
        }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Stop(context, 130));
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Stop(context, 143));
        int code = Run(args, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected, collective, cancel.Token);
        if (code == 130 && signalCode != 0) code = signalCode;
        if (code != 0 && collective.Size > 1)
        {
            Console.Out.Flush();
            Console.Error.Flush();
            collective.Abort(code);
        }
        collective.Dispose();
        return code;
    }

    /// <summary>
    /// Runs the command line in-process with the given writers (used by tests). User errors print one line
    /// "error: …" on <paramref name="stderr"/> and return 1; malformed command lines return 2. With a
    /// <paramref name="collective"/> of several processes only rank 0 writes to <paramref name="stdout"/> and shows
    /// progress; any rank prints its own error, prefixed with "rank r of N:".
    /// </summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, bool interactive = false, ICollective? collective = null,
        CancellationToken cancellationToken = default)
    {
        collective ??= SingleProcessCollective.Instance;
        bool quiet = collective.Rank != 0;
        CliContext.Out = quiet ? TextWriter.Null : stdout;
        CliContext.Err = quiet ? TextWriter.Null : stderr;
        CliContext.Interactive = interactive && !quiet;
        CliContext.Collective = collective;
        string where = collective.Size > 1 ? $"rank {collective.Rank} of {collective.Size}: " : "";
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("diffuse");
            config.Settings.ApplicationVersion = Diffuse.Configuration.DiffusionModelConfig.CurrentLibraryVersion;
            config.Settings.Console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(CliContext.Out),
                Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
                ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
            });
            config.Settings.StrictParsing = true;
            config.PropagateExceptions();
            config.AddCommand<DemoCommand>("demo")
                .WithDescription("Train a 2-D model in about a minute and write pictures of the forward and reverse processes, samples and metrics.")
                .WithExample("demo")
                .WithExample("demo", "--data", "checkerboard", "--out", "runs/checkerboard");
            config.AddCommand<TrainCommand>("train")
                .WithDescription("Train a diffusion model on a built-in 2-D distribution, a numeric CSV table, or images (Fashion-MNIST, MNIST, IDX, CIFAR-10, an image folder).")
                .WithExample("train", "--data", "moons", "--out", "runs/moons", "--steps", "4000")
                .WithExample("train", "--data", "table.csv", "--out", "runs/table", "--schedule", "cosine", "--prediction", "v")
                .WithExample("train", "--data", "moons", "--out", "runs/moons", "--steps", "8000", "--resume")
                .WithExample("train", "--data", "fashion-mnist", "--out", "runs/fashion", "--steps", "3000", "--batch", "64", "--lr", "1e-3", "--blocks", "1");
            config.AddCommand<SampleCommand>("sample")
                .WithDescription("Generate samples from a trained model: a CSV file or a scatter plot for tables; a grid, a folder of PNGs and a reverse-process GIF for images, by class and with guidance.")
                .WithExample("sample", "--model", "runs/moons", "--count", "2000", "--out", "samples.png")
                .WithExample("sample", "--model", "runs/moons", "--count", "500", "--out", "samples.csv", "--sampler", "ddim", "--steps", "50")
                .WithExample("sample", "--model", "runs/moons", "--count", "2000", "--out", "samples.png", "--nfe", "10")
                .WithExample("sample", "--model", "fashion-mnist", "--class", "7", "--out", "sneakers.png")
                .WithExample("sample", "--model", "fashion-mnist", "--out", "grid.png", "--guidance", "3", "--animation", "reverse.gif");
            config.AddCommand<SamplersCommand>("samplers")
                .WithDescription("List the samplers: network evaluations per step, the spacings and options each accepts, whether it draws noise, and its method.")
                .WithExample("samplers");
            config.AddCommand<BenchSamplersCommand>("bench-samplers")
                .WithDescription("Compare every sampler at budgets of network evaluations on a trained model; record the best setting per budget, which 'sample' and 'eval' then use by default.")
                .WithExample("bench-samplers", "--model", "runs/moons")
                .WithExample("bench-samplers", "--model", "runs/moons", "--budgets", "5,10,20", "--samplers", "ddim,dpm++2m,unipc", "--count", "1000");
            config.AddCommand<NoiseCommand>("noise")
                .WithDescription("Show the forward process on real images: a grid of images at growing noise levels, an animated GIF, or (--spectrum) the power spectrum of z_t against frequency.")
                .WithExample("noise", "--data", "fashion-mnist", "--out", "forward.png")
                .WithExample("noise", "--data", "mnist", "--out", "forward.gif", "--schedule", "cosine")
                .WithExample("noise", "--model", "fashion-mnist", "--spectrum", "spectrum.png");
            config.AddCommand<EncodeCommand>("encode")
                .WithDescription("Encode images into latents by DDIM inversion (the probability-flow ODE run from data to noise), recording the model, sampler and classes.")
                .WithExample("encode", "--model", "fashion-mnist", "--images", "fashion-mnist:test", "--count", "16", "--out", "latents.safetensors", "--check")
                .WithExample("encode", "--model", "fashion-mnist", "--images", "a.png,b.png", "--sampler", "ddim", "--steps", "100", "--out", "latents.safetensors");
            config.AddCommand<DecodeCommand>("decode")
                .WithDescription("Decode latents written by 'encode' back into images, with the encoding's classes or another one (a class edit).")
                .WithExample("decode", "--model", "fashion-mnist", "--latents", "latents.safetensors", "--out", "decoded.png")
                .WithExample("decode", "--model", "fashion-mnist", "--latents", "latents.safetensors", "--class", "sneaker", "--out", "as-sneakers.png");
            config.AddCommand<InterpolateCommand>("interpolate")
                .WithDescription("Interpolate between two images or two seeds through the latent space (spherical, or --linear to see why not).")
                .WithExample("interpolate", "--model", "fashion-mnist", "--seeds", "1,2", "--class", "7", "--frames", "9", "--out", "strip.png")
                .WithExample("interpolate", "--model", "fashion-mnist", "--images", "a.png,b.png", "--frames", "16", "--out", "morph.gif");
            config.AddCommand<EditCommand>("edit")
                .WithDescription("Image-to-image by SDEdit: noise an image to a strength in (0, 1]] and denoise it, optionally towards another class.")
                .WithExample("edit", "--model", "fashion-mnist", "--image", "shirt.png", "--strength", "0.5", "--class", "dress", "--out", "before-after.png");
            config.AddCommand<InpaintCommand>("inpaint")
                .WithDescription("Fill a masked region of images (white = keep, black = fill; or --mask-rect) by the replacement method or RePaint's resampling.")
                .WithExample("inpaint", "--model", "fashion-mnist", "--image", "fashion-mnist:test", "--count", "8", "--mask-rect", "7,7,14,14", "--out", "filled.png")
                .WithExample("inpaint", "--model", "fashion-mnist", "--image", "in.png", "--mask", "mask.png", "--resample", "10", "--jump", "10", "--out", "filled.png");
            config.AddCommand<EvalCommand>("eval")
                .WithDescription("Measure a trained model: sample-quality metrics beside their noise floors (for images FD, KD, precision, recall and class accuracy on a feature network), the likelihood (--nll) and, for images, a memorisation check.")
                .WithExample("eval", "--model", "runs/moons", "--data", "moons", "--nll")
                .WithExample("eval", "--model", "runs/table", "--data", "table.csv", "--count", "2000")
                .WithExample("eval", "--model", "runs/fashion", "--count", "1000", "--nll", "--memorization", "nearest.png");
            config.AddCommand<ServeCommand>("serve")
                .WithDescription("Serve models over HTTP: a JSON API (OpenAPI at /openapi.json) that batches concurrent requests, with progress as server-sent events, and a playground page at /.")
                .WithExample("serve", "--model", "fashion-mnist")
                .WithExample("serve", "--model", "runs/moons", "--model", "fashion-mnist", "--port", "9000")
                .WithExample("serve", "--model", "fashion-mnist", "--host", "0.0.0.0", "--api-key", "a-long-random-secret");
            config.AddCommand<MpiSelfTestCommand>("mpi-selftest")
                .WithDescription("Internal: 'train' with per-step checksums, an early stop and injected failures, for the multi-process tests.")
                .IsHidden();
        });
        // Commands set libtorch's thread count for their model; an in-process caller (a test, a host application) gets
        // its own setting back afterwards.
        int threads = TorchSharp.torch.get_num_threads();
        int? fixedThreads = Diffuse.Runtime.TorchThreads.Fixed;
        Action<string> removed = path => CliContext.Err.WriteLine($"removed '{path}', a temporary file left by an interrupted run");
        Diffuse.IO.AtomicFile.StaleFileRemoved += removed;
        Diffuse.Imaging.OutputFiles.StaleFileRemoved += removed;
        try
        {
            return app.Run(args, cancellationToken);
        }
        catch (DiffuseException e)
        {
            stderr.WriteLine($"error: {where}{LibraryFlags.Message(e)}");
            return 1;
        }
        catch (CommandParseException e)
        {
            stderr.WriteLine($"error: {where}{Plain(e)}; run 'diffuse --help' or 'diffuse <command> --help' for the options.");
            return 2;
        }
        catch (CommandRuntimeException e)
        {
            stderr.WriteLine($"error: {where}{OptionValues.Describe(e.Message, args) ?? Plain(e)}; run 'diffuse <command> --help' for the options.");
            return 2;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine($"{where}cancelled; every file written so far is complete.");
            return 130;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            stderr.WriteLine($"error: {where}unexpected failure, a bug in Diffuse; please report it with this output: {e.GetType().Name}: {e.Message}");
            stderr.WriteLine(e.StackTrace);
            return 70;
        }
        finally
        {
            Diffuse.IO.AtomicFile.StaleFileRemoved -= removed;
            Diffuse.Imaging.OutputFiles.StaleFileRemoved -= removed;
            Diffuse.Runtime.TorchThreads.Fixed = fixedThreads;
            Diffuse.Runtime.TorchThreads.Set(threads);
        }
    }

    private static string Plain(Exception e) => e.Message.TrimEnd('.');
}

/// <summary>Where commands write: set by <see cref="Program.Run"/> so tests can capture output.</summary>
public static class CliContext
{
    /// <summary>Standard output.</summary>
    public static TextWriter Out { get; set; } = Console.Out;

    /// <summary>Standard error (progress bars go here).</summary>
    public static TextWriter Err { get; set; } = Console.Error;

    /// <summary>True when stderr is a terminal: draw a live progress bar; otherwise log plain lines.</summary>
    public static bool Interactive { get; set; }

    /// <summary>The processes this command runs on: a single process unless launched by <c>mpiexec</c>.</summary>
    public static ICollective Collective { get; set; } = SingleProcessCollective.Instance;

    /// <summary>Refuses to run <paramref name="command"/> on several processes (only <c>train</c> is data-parallel).</summary>
    public static void RequireSingleProcess(string command)
    {
        if (Collective.Size > 1)
            throw new DiffuseException($"'diffuse {command}' runs on one process only; launch it without mpiexec (only 'diffuse train' runs on several processes).");
    }
}
