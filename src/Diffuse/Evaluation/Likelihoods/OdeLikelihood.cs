using System.Globalization;
using Diffuse.Denoisers;
using Diffuse.Randomness;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.Likelihoods;

/// <summary>The random probe vectors v of Hutchinson's trace estimator tr(A) = E[vᵀ·A·v] (Hutchinson 1989).</summary>
public enum HutchinsonProbe
{
    /// <summary>Entries ±1 with equal probability: the lowest variance, 2·Σ_{i≠j} A_ij², and exact for a diagonal A.</summary>
    Rademacher,
    /// <summary>Standard normal entries: variance 2·‖A‖_F² (Skilling 1989).</summary>
    Gaussian,
}

/// <summary>Settings of <see cref="OdeLikelihood.Compute"/>.</summary>
/// <param name="Steps">Steps of the fixed-step solver (classical RK4, uniform in log σ); ignored when <paramref name="Adaptive"/>.</param>
/// <param name="HutchinsonSamples">Probe vectors per evaluation of the divergence (averaged); ignored with <paramref name="ExactTrace"/>.</param>
/// <param name="Adaptive">Use the adaptive Dormand–Prince 5(4) solver with <paramref name="Rtol"/> and <paramref name="Atol"/> instead of fixed steps.</param>
/// <param name="Rtol">Relative tolerance of the adaptive solver (Song et al. 2021 use 1e-5).</param>
/// <param name="Atol">Absolute tolerance of the adaptive solver, on the state (model units) and on the accumulated log-density (nats).</param>
/// <param name="Dequantize">
/// The data are 8-bit values scaled to [−1, 1] (k/127.5 − 1): add uniform noise of one bin (width 2/255) and report the
/// discrete likelihood in bits/dim (see <see cref="OdeLikelihood"/>).
/// </param>
/// <param name="ExactTrace">Compute the divergence exactly, with one backward pass per dimension, instead of by Hutchinson's estimator (at most <see cref="OdeLikelihoodOptions.MaxExactTraceDimensions"/> dimensions).</param>
/// <param name="Probe">The distribution of the Hutchinson probes.</param>
/// <param name="SigmaMin">
/// The noise level where the flow starts at the data (default: σ of the first trained timestep, and for dequantised 8-bit
/// data at most <see cref="OdeLikelihood.DequantizedSigmaMin"/>; see <see cref="OdeLikelihood.DefaultSigmaMin"/>).
/// </param>
/// <param name="BatchSize">Data points integrated together.</param>
public sealed record OdeLikelihoodOptions(int Steps = 100, int HutchinsonSamples = 1, bool Adaptive = false, double Rtol = 1e-5,
    double Atol = 1e-5, bool Dequantize = false, bool ExactTrace = false, HutchinsonProbe Probe = HutchinsonProbe.Rademacher,
    double? SigmaMin = null, int BatchSize = 1000)
{
    /// <summary>The largest number of dimensions for which <see cref="ExactTrace"/> is allowed (one backward pass each).</summary>
    public const int MaxExactTraceDimensions = 256;

    /// <summary>The most steps the adaptive solver may take (accepted and rejected) before it gives up.</summary>
    public const int MaxAdaptiveSteps = 10_000;

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!Adaptive && Steps < 1) throw new DiffuseException($"the ODE likelihood needs at least one solver step (got {Steps}).");
        if (!ExactTrace && HutchinsonSamples < 1) throw new DiffuseException($"the Hutchinson estimator needs at least one probe (got {HutchinsonSamples}).");
        if (Adaptive && (!(Rtol > 0) || !(Atol > 0) || double.IsInfinity(Rtol) || double.IsInfinity(Atol)))
            throw new DiffuseException($"the adaptive solver needs positive tolerances (got rtol {Rtol}, atol {Atol}).");
        if (SigmaMin is { } s && (!(s > 0) || double.IsInfinity(s))) throw new DiffuseException($"σ_min must be positive and finite (got {s}).");
        if (BatchSize < 1) throw new DiffuseException($"the batch size must be at least 1 (got {BatchSize}).");
    }

    /// <summary>
    /// A short description of the solver and the trace estimator, e.g. "RK4, 100 steps uniform in log σ; Hutchinson, 1
    /// rademacher probe"; <paramref name="stepsTaken"/> adds the adaptive solver's step count.
    /// </summary>
    public string Describe(int? stepsTaken = null)
    {
        string solver = Adaptive
            ? $"Dormand–Prince 5(4), rtol {Rtol.ToString("0.###e0", CultureInfo.InvariantCulture)}, atol {Atol.ToString("0.###e0", CultureInfo.InvariantCulture)}"
              + (stepsTaken is { } taken ? $", {taken} steps in log σ" : "")
            : $"RK4, {Steps} steps uniform in log σ";
        string trace = ExactTrace ? "exact trace" : $"Hutchinson, {HutchinsonSamples} {Probe.ToString().ToLowerInvariant()} probe{(HutchinsonSamples == 1 ? "" : "s")}";
        return $"{solver}; {trace}{(Dequantize ? "; uniform dequantisation" : "")}";
    }
}

/// <summary>An estimate of the negative log-likelihood of a data set, per dimension.</summary>
/// <param name="NatsPerDim">−log p per dimension in nats: in the data's original units for continuous data, of the 8-bit values (a discrete likelihood) with dequantisation.</param>
/// <param name="StdError">Standard error of <paramref name="NatsPerDim"/> across data points (it includes the trace estimator's noise, which is independent per point).</param>
/// <param name="PriorNatsPerDim">−log of the prior density N(0, (1 + σ_max²)·I) at the end of the flow, per dimension (model units).</param>
/// <param name="FlowNatsPerDim">−∫ ∇·f, the log-volume change along the flow, per dimension (model units).</param>
/// <param name="UnitsNatsPerDim">The change of units: the mean log-scale of the normalisation for continuous data, log 127.5 for dequantised 8-bit data.</param>
/// <param name="NatsPerPoint">Each point's −log p per dimension, in the units of <paramref name="NatsPerDim"/>.</param>
/// <param name="Count">Number of data points.</param>
/// <param name="Dimensions">Dimensions per data point.</param>
/// <param name="Method">What was computed and how: the solver, the noise-level range and the trace estimator.</param>
/// <param name="FunctionEvaluations">Denoiser evaluations per data point (the largest over batches for the adaptive solver).</param>
public sealed record LikelihoodResult(double NatsPerDim, double StdError, double PriorNatsPerDim, double FlowNatsPerDim,
    double UnitsNatsPerDim, IReadOnlyList<double> NatsPerPoint, int Count, long Dimensions, string Method, int FunctionEvaluations)
{
    /// <summary>The result in bits per dimension: nats / ln 2.</summary>
    public double BitsPerDim => NatsPerDim / Math.Log(2);

    /// <summary>Standard error in bits per dimension.</summary>
    public double BitsStdError => StdError / Math.Log(2);
}

/// <summary>
/// The exact log-likelihood of a diffusion model through its probability-flow ODE (Song et al. 2021, §4.3 and App. D.2,
/// eq. 39; a continuous normalising flow, Chen et al. 2018): log p_σmin(x(σ_min)) = log p_σmax(x(σ_max)) + ∫ ∇·f dt
/// along the solution started at the data point. Notation map: x = z·√(1 + σ²) = z/√ᾱ the variance-exploding state,
/// D(x; σ) = x̂0, and the flow in s = log σ is dx/ds = σ·dx/dσ = x − D(x; σ) (Karras et al. 2022, eq. 4 with σ(t) = t),
/// whose divergence is Dim − tr(∂D/∂x). The trace is Hutchinson's estimate vᵀ(∂D/∂x)v from one vector–Jacobian product
/// per probe, with one probe set per data point held fixed along the whole path so that the integral stays unbiased
/// (Grathwohl et al. 2019), or exact for small dimensions. The prior is the samplers' start, z ~ N(0, I) at σ_max, i.e.
/// x ~ N(0, (1 + σ_max²)·I).
/// </summary>
/// <remarks>
/// <para><b>Where the flow starts.</b> The network is trained only down to σ_1 (timestep index 0; about 0.01 for the
/// linear schedule at T = 1000), and below it the ODE can only use an extrapolation. The flow therefore starts at the
/// data point itself at σ_min = σ_1 (as Song et al. start at t = ε = 10⁻⁵): the result is the exact NLL of the density
/// of the flow's state at σ_min, the model that a deterministic sampler defines if it stops at σ_1 instead of taking
/// its last denoising step to σ = 0. For continuous data on scales well above σ_1 that density equals the one at σ = 0
/// to second order in σ_1 (data smoothed by N(0, σ_1²)); <see cref="OdeLikelihoodOptions.SigmaMin"/> may move the start
/// lower (the network then sees the timestep-0 embedding with the true ᾱ).</para>
/// <para><b>The prior.</b> N(0, (1 + σ_max²)·I) ignores the data's mean m and covariance at σ_max; since x(σ_max) is of
/// order σ_max, the mean shifts each point's log-density by about x(σ_max)·m/σ_max² ≈ m/σ_max (0.006 per unit of m for
/// the linear schedule, σ_max ≈ 157), and averages to second order. Standardised data (m = 0) see only the second-order
/// part. Under zero terminal SNR, σ_max is the largest finite trained level (index T − 2), where ᾱ is already tiny.</para>
/// <para><b>Units.</b> Continuous data: nats per dimension in the data's original units, by adding the mean log-scale of
/// the normalisation (as <see cref="VariationalBound"/> does). 8-bit data scaled to [−1, 1] (k/127.5 − 1) with
/// <see cref="OdeLikelihoodOptions.Dequantize"/>: each value gets uniform noise over its bin [x − 1/255, x + 1/255) of width
/// w = 2/255, so by Jensen's inequality −log P(k) ≤ E_u[−log p(x + u)] − D·log w; per dimension the discrete NLL is the
/// continuous one plus −log(2/255) = log 127.5 ≈ 4.848 nats, and bits/dim = (NLL_nats/D + log 127.5)/ln 2
/// (Theis et al. 2016; Ho et al. 2020, Table 2).</para>
/// </remarks>
public static class OdeLikelihood
{
    /// <summary>The width of one of the 256 bins of 8-bit data in [−1, 1].</summary>
    public const double BinWidth = 2.0 / 255.0;

    private const ulong DequantizationStream = StreamDomains.OdeDequantization;
    private const ulong FirstProbeStream = StreamDomains.OdeFirstProbe;

    /// <summary>
    /// Computes the negative log-likelihood of the rows of <paramref name="data"/> [N, ...] (in model units) under the
    /// probability-flow ODE of <paramref name="denoiser"/>. <paramref name="logScalePerDim"/> is the mean log-scale of the
    /// map from original to model units (for standardised data, the mean log std; 0 for dequantised 8-bit data). The
    /// denoiser is evaluated in the dtype of <paramref name="data"/> and must be differentiable by autograd (networks and
    /// the analytic denoisers are). Probes and dequantisation noise depend only on (seed, row index), not on the batch.
    /// </summary>
    public static LikelihoodResult Compute(ISigmaDenoiser denoiser, NoiseSchedule schedule, Tensor data, OdeLikelihoodOptions options,
        ulong seed, double logScalePerDim = 0, Action<int, int>? onProgress = null)
    {
        options.Validate();
        if (data.dim() < 2) throw new DiffuseException($"the data need a batch dimension: [rows, ...] (got shape [{string.Join(", ", data.shape)}]).");
        int count = (int)data.shape[0];
        if (count < 2) throw new DiffuseException("the ODE likelihood needs at least two data points (for a standard error).");
        long dims = data.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        if (options.ExactTrace && dims > OdeLikelihoodOptions.MaxExactTraceDimensions)
            throw new DiffuseException($"the exact trace needs one backward pass per dimension; {dims} dimensions are too many (at most {OdeLikelihoodOptions.MaxExactTraceDimensions}): use Hutchinson probes.");
        if (options.Dequantize && logScalePerDim != 0)
            throw new DiffuseException("dequantised 8-bit data have a discrete likelihood: no change of units applies, so logScalePerDim must be 0.");
        var (sigmaMin, sigmaMax) = SigmaRange(schedule, options.SigmaMin ?? DefaultSigmaMin(schedule, options.Dequantize));
        var workType = data.is_floating_point() ? data.dtype : ScalarType.Float32;
        var elementShape = data.shape.Skip(1).ToArray();
        double unitsPerDim = options.Dequantize ? -Math.Log(BinWidth) : logScalePerDim;
        var prior = new double[count];
        var flow = new double[count];
        int batches = (count + options.BatchSize - 1) / options.BatchSize;
        int evaluations = 0, solverSteps = 0;
        for (int b = 0; b < batches; b++)
        {
            int start = b * options.BatchSize, size = Math.Min(options.BatchSize, count - start);
            using var batchScope = NewDisposeScope();
            var x = data.narrow(0, start, size).to_type(ScalarType.Float64);
            if (options.Dequantize) x = Dequantize(x, seed, start, elementShape);
            var field = new Field(denoiser, workType, Probes(options, seed, start, size, elementShape, dims, workType, x.device), !options.ExactTrace);
            Action<double> progress = fraction => onProgress?.Invoke(
                (int)Math.Round((b + fraction) * (options.Adaptive ? 1000 : options.Steps)), batches * (options.Adaptive ? 1000 : options.Steps));
            var (xEnd, integral, steps) = options.Adaptive
                ? SolveAdaptive(field, x, Math.Log(sigmaMin), Math.Log(sigmaMax), options.Rtol, options.Atol, progress)
                : SolveRk4(field, x, Math.Log(sigmaMin), Math.Log(sigmaMax), options.Steps, progress);
            evaluations = Math.Max(evaluations, field.Evaluations);
            solverSteps = Math.Max(solverSteps, steps);
            // −log N(x; 0, (1 + σ_max²)·I) at the end of the flow.
            double variance = 1 + sigmaMax * sigmaMax;
            var priorNll = (xEnd.flatten(1).square().sum(1) * (0.5 / variance) + 0.5 * dims * Math.Log(2 * Math.PI * variance)).cpu().data<double>().ToArray();
            var integralValues = integral.cpu().data<double>().ToArray();
            for (int i = 0; i < size; i++)
            {
                prior[start + i] = priorNll[i];
                flow[start + i] = -integralValues[i];
            }
        }
        var total = new double[count];
        for (int i = 0; i < count; i++) total[i] = (prior[i] + flow[i]) / dims + unitsPerDim;
        double mean = total.Average();
        if (!double.IsFinite(mean))
            throw new DiffuseException("the ODE likelihood is not finite: the denoiser returned non-finite values along the flow.");
        double spread = total.Sum(v => (v - mean) * (v - mean)) / (count - 1);
        string method = string.Create(CultureInfo.InvariantCulture,
            $"probability-flow ODE from σ = {sigmaMin:G4} to {sigmaMax:G4}; {options.Describe(options.Adaptive ? solverSteps : null)}");
        return new LikelihoodResult(mean, Math.Sqrt(spread / count), prior.Average() / dims, flow.Average() / dims, unitsPerDim,
            total, count, dims, method, evaluations);
    }

    /// <summary>
    /// The highest default σ_min for dequantised 8-bit data: the bins are 2/255 ≈ 0.008 wide, so a start at σ_1 ≈ 0.01
    /// (linear schedule, T = 1000) would smooth each value over more than its bin; Song et al. 2021 start at t = 10⁻⁵.
    /// </summary>
    public const double DequantizedSigmaMin = 1e-3;

    /// <summary>
    /// The default start of the flow: σ of timestep index 0, and for dequantised 8-bit data (<paramref name="dequantize"/>)
    /// at most <see cref="DequantizedSigmaMin"/>.
    /// </summary>
    public static double DefaultSigmaMin(NoiseSchedule schedule, bool dequantize) =>
        dequantize ? Math.Min(schedule.Sigma(0), DequantizedSigmaMin) : schedule.Sigma(0);

    /// <summary>
    /// The noise levels between which the flow is integrated: from <paramref name="sigmaMin"/> (default σ of timestep
    /// index 0) to the largest finite trained level (index T − 1, or T − 2 under zero terminal SNR).
    /// </summary>
    public static (double SigmaMin, double SigmaMax) SigmaRange(NoiseSchedule schedule, double? sigmaMin = null)
    {
        int last = schedule.HasZeroTerminalSnr ? schedule.Timesteps - 2 : schedule.Timesteps - 1;
        if (last < 0) throw new DiffuseException("the ODE likelihood needs a schedule with at least one finite noise level.");
        double high = schedule.Sigma(last);
        double low = sigmaMin ?? schedule.Sigma(0);
        if (!(low < high))
            throw new DiffuseException($"σ_min = {low.ToString("G4", CultureInfo.InvariantCulture)} must lie below the largest trained noise level {high.ToString("G4", CultureInfo.InvariantCulture)}.");
        return (low, high);
    }

    /// <summary>Adds uniform noise over each 8-bit value's bin, after checking that the data are on the 8-bit grid of [−1, 1].</summary>
    private static Tensor Dequantize(Tensor x, ulong seed, int start, long[] elementShape)
    {
        var levels = (x + 1) * 127.5;
        bool onGrid = (levels - levels.round()).abs().max().item<double>() <= 1e-3
                      && levels.min().item<double>() >= -1e-3 && levels.max().item<double>() <= 255 + 1e-3;
        if (!onGrid)
            throw new DiffuseException("dequantisation expects 8-bit data scaled to [−1, 1] (values k/127.5 − 1 for k = 0 … 255); these data are not on that grid.");
        // U(0, 1) as Φ(n) of seeded standard normal n (exactly uniform for normal n), centred on the value's bin.
        var u = special.ndtr(SeededNoise.Normal(seed, DequantizationStream, start, (int)x.shape[0], elementShape, x.device).to_type(ScalarType.Float64));
        return x + (u - 0.5) * BinWidth;
    }

    /// <summary>The probe vectors of one batch: Hutchinson probes per row, or the unit vectors for the exact trace.</summary>
    private static Tensor[] Probes(OdeLikelihoodOptions options, ulong seed, int start, int size, long[] elementShape, long dims, ScalarType type, Device device)
    {
        if (options.ExactTrace)
        {
            var probes = new Tensor[dims];
            for (int j = 0; j < dims; j++)
            {
                var unit = nn.functional.one_hot(full(size, (long)j, dtype: ScalarType.Int64, device: device), dims).to_type(type);
                probes[j] = unit.view(new long[] { size }.Concat(elementShape).ToArray());
            }
            return probes;
        }
        var result = new Tensor[options.HutchinsonSamples];
        for (int k = 0; k < result.Length; k++)
        {
            var normal = SeededNoise.Normal(seed, FirstProbeStream + (ulong)k, start, size, elementShape, device);
            result[k] = (options.Probe == HutchinsonProbe.Rademacher ? (normal >= 0).to_type(type) * 2 - 1 : normal.to_type(type));
        }
        return result;
    }

    /// <summary>Classical fourth-order Runge–Kutta with <paramref name="steps"/> equal steps in s = log σ from <paramref name="s0"/> to <paramref name="s1"/>.</summary>
    private static (Tensor X, Tensor Integral, int Steps) SolveRk4(Field field, Tensor x, double s0, double s1, int steps, Action<double> progress)
    {
        using var solverScope = NewDisposeScope();
        var integral = zeros(x.shape[0], dtype: ScalarType.Float64, device: x.device);
        double h = (s1 - s0) / steps;
        for (int i = 0; i < steps; i++)
        {
            using var stepScope = NewDisposeScope();
            double s = s0 + i * h;
            var (k1, d1) = field.Evaluate(x, s);
            var (k2, d2) = field.Evaluate(x + 0.5 * h * k1, s + 0.5 * h);
            var (k3, d3) = field.Evaluate(x + 0.5 * h * k2, s + 0.5 * h);
            var (k4, d4) = field.Evaluate(x + h * k3, i == steps - 1 ? s1 : s + h);
            var nextX = (x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)).MoveToOuterDisposeScope();
            var nextIntegral = (integral + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)).MoveToOuterDisposeScope();
            if (i > 0) x.Dispose();     // the caller's start state is not ours to dispose
            integral.Dispose();
            x = nextX;
            integral = nextIntegral;
            progress((i + 1.0) / steps);
        }
        return (x.MoveToOuterDisposeScope(), integral.MoveToOuterDisposeScope(), steps);
    }

    // Dormand–Prince 5(4) (Dormand and Prince 1980): nodes, the stage matrix, the fifth-order weights (= the last stage
    // row, so the last evaluation is the next step's first: FSAL) and the difference to the embedded fourth-order weights.
    private static readonly double[] DpNodes = { 0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1 };
    private static readonly double[][] DpStages =
    {
        Array.Empty<double>(),
        new[] { 1.0 / 5 },
        new[] { 3.0 / 40, 9.0 / 40 },
        new[] { 44.0 / 45, -56.0 / 15, 32.0 / 9 },
        new[] { 19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729 },
        new[] { 9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656 },
        new[] { 35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84 },
    };
    private static readonly double[] DpError = { 71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40 };

    /// <summary>
    /// Adaptive Dormand–Prince 5(4) in s = log σ with a step shared by the batch: the error of each row is the RMS over its
    /// state and its log-density of (local error)/(atol + rtol·|value|), the batch's error the largest row's; a step is
    /// accepted when that is at most 1, and the next step is scaled by 0.9·error^(−1/5), clamped to [0.2, 5].
    /// </summary>
    private static (Tensor X, Tensor Integral, int Steps) SolveAdaptive(Field field, Tensor x, double s0, double s1, double rtol, double atol,
        Action<double> progress)
    {
        using var solverScope = NewDisposeScope();
        var start = x;
        var integral = zeros(x.shape[0], dtype: ScalarType.Float64, device: x.device);
        double range = s1 - s0, s = s0, h = range / 50;
        int attempts = 0, accepted = 0;
        var first = field.Evaluate(x, s);
        while (s1 - s > 1e-12 * range)
        {
            if (++attempts > OdeLikelihoodOptions.MaxAdaptiveSteps)
                throw new DiffuseException($"the adaptive ODE solver took more than {OdeLikelihoodOptions.MaxAdaptiveSteps} steps: loosen rtol/atol or use fixed steps.");
            h = Math.Min(h, s1 - s);
            using var stepScope = NewDisposeScope();
            var kx = new Tensor[7];
            var kd = new Tensor[7];
            (kx[0], kd[0]) = (first.Drift, first.Divergence);
            Tensor stageX = x, stageIntegral = integral;
            for (int j = 1; j < 7; j++)
            {
                stageX = x;
                stageIntegral = integral;
                for (int m = 0; m < j; m++)
                {
                    double a = DpStages[j][m];
                    if (a == 0) continue;
                    stageX = stageX + (h * a) * kx[m];
                    stageIntegral = stageIntegral + (h * a) * kd[m];
                }
                (kx[j], kd[j]) = field.Evaluate(stageX, j >= 5 && s + h >= s1 ? s1 : s + DpNodes[j] * h);
            }
            // stageX/stageIntegral now hold the fifth-order solution (the last stage row is the fifth-order weights).
            Tensor errX = zeros_like(x), errIntegral = zeros_like(integral);
            for (int j = 0; j < 7; j++)
            {
                if (DpError[j] == 0) continue;
                errX = errX + (h * DpError[j]) * kx[j];
                errIntegral = errIntegral + (h * DpError[j]) * kd[j];
            }
            var scaleX = atol + rtol * maximum(x.abs(), stageX.abs());
            var scaleIntegral = atol + rtol * maximum(integral.abs(), stageIntegral.abs());
            long perRow = x[0].numel();
            var rowSquares = (errX / scaleX).square().flatten(1).sum(1) + (errIntegral / scaleIntegral).square();
            double error = (rowSquares / (perRow + 1)).sqrt().max().item<double>();
            if (double.IsNaN(error)) throw new DiffuseException("the ODE solution became NaN: the denoiser returned non-finite values.");
            bool accept = error <= 1;
            double factor = error == 0 ? 5 : Math.Clamp(0.9 * Math.Pow(error, -0.2), 0.2, 5);
            if (accept)
            {
                accepted++;
                s = s + h >= s1 - 1e-12 * range ? s1 : s + h;
                if (!ReferenceEquals(x, start)) x.Dispose();     // the caller's start state is not ours to dispose
                integral.Dispose();
                first.Drift.Dispose();
                first.Divergence.Dispose();
                x = stageX.MoveToOuterDisposeScope();
                integral = stageIntegral.MoveToOuterDisposeScope();
                first = (kx[6].MoveToOuterDisposeScope(), kd[6].MoveToOuterDisposeScope());
                progress((s - s0) / range);
            }
            h *= factor;
        }
        return (x.MoveToOuterDisposeScope(), integral.MoveToOuterDisposeScope(), accepted);
    }

    /// <summary>
    /// The flow dx/ds = x − D(x; σ = e^s) and its divergence Dim − tr(∂D/∂x), the trace from vector–Jacobian products with
    /// the batch's probes (averaged for Hutchinson, summed over unit vectors for the exact trace).
    /// </summary>
    private sealed class Field(ISigmaDenoiser denoiser, ScalarType workType, Tensor[] probes, bool average)
    {
        public int Evaluations { get; private set; }

        public (Tensor Drift, Tensor Divergence) Evaluate(Tensor x, double s)
        {
            Evaluations++;
            using var scope = NewDisposeScope();
            using var grad = enable_grad();
            double sigma = Math.Exp(s);
            var input = x.detach().to_type(workType).requires_grad_(true);
            var z = input * (1 / Math.Sqrt(1 + sigma * sigma));
            var d = denoiser.DenoiseAtSigma(z, sigma).X0;
            if (!d.requires_grad)
                throw new DiffuseException("the denoiser's x0 estimate does not depend differentiably on its input, so the ODE likelihood cannot take its divergence.");
            long dims = x[0].numel();
            var trace = zeros(x.shape[0], dtype: ScalarType.Float64, device: x.device);
            for (int k = 0; k < probes.Length; k++)
            {
                var vjp = torch.autograd.grad(new[] { d }, new[] { input }, new[] { probes[k] }, retain_graph: k < probes.Length - 1)[0];
                trace = trace + (vjp * probes[k]).flatten(1).sum(1).to_type(ScalarType.Float64);
            }
            if (average) trace = trace / probes.Length;
            var drift = x - d.detach().to_type(ScalarType.Float64);
            var divergence = dims - trace;
            return (drift.MoveToOuterDisposeScope(), divergence.MoveToOuterDisposeScope());
        }
    }
}
