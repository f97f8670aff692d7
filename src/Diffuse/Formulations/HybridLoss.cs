using Diffuse.Evaluation.Likelihoods;
using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Formulations;

/// <summary>
/// The hybrid objective of Nichol and Dhariwal 2021 (§3.1, eq. 16), L_hybrid = L_simple + λ·L_vlb, for a network that
/// learns its reverse variances (<see cref="LearnedVariance"/>), as pure functions of one batch. L_simple (the MSE of the
/// prediction half) trains the mean; L_vlb trains only the variance half, because the prediction enters it with its
/// gradient stopped. Notation map: n the timestep index per row (the paper's t = n + 1), L_t the per-timestep term of
/// the variational bound (Ho et al. 2020, eq. 5). A training step, with the simple loss <c>simple</c> [B] as usual:
/// <code>
/// var (prediction, v) = LearnedVariance.Split(network.call(z, t), channels);
/// var simple = (prediction - target).square().flatten(1).mean(new long[] { 1 });
/// var vlb = HybridLoss.VlbTerm(schedule, config.Prediction, x0, z, t, prediction, v);       // [B], nats per dimension
/// var perExample = HybridLoss.Combine(simple, vlb, schedule.Timesteps) * weights;           // weights: 1, or from TimestepImportance
/// </code>
/// </summary>
public static class HybridLoss
{
    /// <summary>λ = 0.001, the weight of L_vlb (Nichol and Dhariwal 2021, §3.1).</summary>
    public const double DefaultLambda = 0.001;

    /// <summary>
    /// Nichol and Dhariwal 2021, §3.1 (eqs. 10–13 with eq. 15): the bound term L_t per row in nats per dimension:
    /// KL(q(z_{t−1} | z_t, x0) ‖ N(μ_θ, Σ_θ)) for rows with n &gt; 0, and the decoder's −log p(x0 | z_1) with mean x̂0 and
    /// variance Σ_θ for rows with n = 0 (<paramref name="decoder"/>: Gaussian for continuous data by default, the
    /// discretised Gaussian for 8-bit images), exactly as <see cref="VariationalBound"/> computes them. μ_θ = μ̃(z_t, x̂0)
    /// uses the <paramref name="prediction"/> output [B, C, ...] with its gradient stopped, so only the raw variance output
    /// <paramref name="varianceOutput"/> v [B, C, ...] (f = (v + 1)/2) receives a gradient. <paramref name="timesteps"/> [B]
    /// (int64) may differ per row. Computed in float64; returned in the dtype of <paramref name="varianceOutput"/>.
    /// </summary>
    public static Tensor VlbTerm(NoiseSchedule schedule, Prediction prediction, Tensor x0, Tensor z, Tensor timesteps,
        Tensor predictionOutput, Tensor varianceOutput, IDataDecoder? decoder = null)
    {
        decoder ??= new GaussianDecoder();
        using var scope = NewDisposeScope();
        long[] steps = timesteps.to_type(ScalarType.Int64).data<long>().ToArray();
        int rows = steps.Length;
        var (alphaBar, x0Coef, zCoef, logBeta, logPosterior) = (new double[rows], new double[rows], new double[rows], new double[rows], new double[rows]);
        for (int i = 0; i < rows; i++)
        {
            if (steps[i] < 0 || steps[i] >= schedule.Timesteps)
                throw new DiffuseException($"timestep index {steps[i]} is outside the schedule's 0 … {schedule.Timesteps - 1}.");
            int n = (int)steps[i];
            alphaBar[i] = schedule.AlphaBar(n);
            var post = GaussianProcess.Posterior(alphaBar[i], schedule.AlphaBar(n - 1));
            (x0Coef[i], zCoef[i]) = (post.X0Coef, post.ZCoef);
            (logBeta[i], logPosterior[i]) = LearnedVariance.StepLogVariances(schedule, n);
        }
        var shape = new long[x0.dim()];
        Array.Fill(shape, 1L);
        shape[0] = rows;
        Tensor Column(double[] values) => tensor(values, dtype: ScalarType.Float64, device: x0.device).reshape(shape);

        var x = x0.to_type(ScalarType.Float64);
        var zd = z.to_type(ScalarType.Float64);
        var (x0Hat, _) = PredictionConversion.ToX0AndEps(prediction, predictionOutput.detach().to_type(ScalarType.Float64), zd, Column(alphaBar));
        var trueMean = Column(x0Coef) * x + Column(zCoef) * zd;
        var modelMean = Column(x0Coef) * x0Hat + Column(zCoef) * zd;     // = x̂0 at n = 0, where the coefficients are 1 and 0
        var logVariance = LearnedVariance.LogVariance(LearnedVariance.Fraction(varianceOutput.to_type(ScalarType.Float64)), Column(logBeta), Column(logPosterior));
        // Both terms are finite on every row (β̃ is clipped at n = 0), so the unused one passes no NaN into the gradient.
        var kl = GaussianProcess.GaussianKl(trueMean, Column(logPosterior), modelMean, logVariance);
        var nll = decoder.NegativeLogLikelihood(x, modelMean, logVariance.exp());
        double dims = x0[0].numel();
        var term = where(tensor(steps, device: x0.device).eq(0), nll, kl) / dims;
        return term.to_type(varianceOutput.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Nichol and Dhariwal 2021, eq. 16: L_simple + λ·L_vlb per row, with the single-sample estimate L_vlb = T·L_t
    /// measured, as in the paper's code where λ = 0.001 was tuned, in bits per dimension (<paramref name="vlbTerm"/> of
    /// <see cref="VlbTerm"/> is in nats, so it is divided by ln 2). Multiply the result by the importance weights of
    /// <see cref="TimestepImportance.Sample"/> when the timesteps were drawn by it.
    /// </summary>
    public static Tensor Combine(Tensor simple, Tensor vlbTerm, int timesteps, double lambda = DefaultLambda) =>
        simple + lambda * timesteps / Math.Log(2) * vlbTerm;
}

/// <summary>
/// Importance sampling of timesteps for the variational bound (Nichol and Dhariwal 2021, §3.3, eq. 18): t is drawn with
/// p_t ∝ √E[L_t²], estimated from the last <see cref="HistoryLength"/> values of L_t seen at each t, and each example is
/// weighted by 1/(T·p_t) so the estimate of Σ_t L_t stays unbiased. Until every t has <see cref="HistoryLength"/> values
/// the draws are uniform with weight 1. As in the paper's code, a share <c>uniformShare</c> of the probability is spread
/// uniformly so that no p_t is zero. It holds no random state: the caller supplies uniform draws. Its state (the loss
/// history) is a tensor for checkpoints (<see cref="ToState"/>, <see cref="FromState"/>); in data-parallel training every
/// process must <see cref="Record"/> the losses of the whole global batch, so that all keep the same state.
/// </summary>
public sealed class TimestepImportance
{
    /// <summary>How many recent values of L_t are kept per timestep (10 in the paper).</summary>
    public const int HistoryLength = 10;

    /// <summary>The share of the probability spread uniformly over the timesteps (0.001 in the paper's code).</summary>
    public const double DefaultUniformShare = 0.001;

    private readonly double[,] _history;   // [T, HistoryLength], oldest first
    private readonly int[] _counts;        // values held per timestep, at most HistoryLength
    private readonly double _uniformShare;

    /// <summary>Starts with an empty history over <paramref name="timesteps"/> timesteps.</summary>
    public TimestepImportance(int timesteps, double uniformShare = DefaultUniformShare)
    {
        if (timesteps < 1) throw new DiffuseException($"the number of timesteps must be at least 1 (got {timesteps}).");
        if (!(uniformShare >= 0 && uniformShare < 1)) throw new DiffuseException($"the uniform share must lie in [0, 1) (got {uniformShare}).");
        _history = new double[timesteps, HistoryLength];
        _counts = new int[timesteps];
        _uniformShare = uniformShare;
    }

    /// <summary>The number of timesteps T.</summary>
    public int Timesteps => _counts.Length;

    /// <summary>Whether every timestep has <see cref="HistoryLength"/> values, so that sampling is by importance.</summary>
    public bool IsWarm => _counts.All(c => c == HistoryLength);

    /// <summary>Adds the values L_t of a batch (<paramref name="losses"/>, one per row, at <paramref name="timesteps"/>); a full history drops its oldest value.</summary>
    public void Record(ReadOnlySpan<long> timesteps, ReadOnlySpan<double> losses)
    {
        if (timesteps.Length != losses.Length) throw new ArgumentException("one loss per timestep is needed");
        for (int i = 0; i < timesteps.Length; i++)
        {
            long t = timesteps[i];
            if (t < 0 || t >= Timesteps) throw new DiffuseException($"timestep index {t} is outside 0 … {Timesteps - 1}.");
            if (!double.IsFinite(losses[i])) throw new DiffuseException($"the loss at timestep {t} is {losses[i]}; only finite losses can guide the sampling.");
            int n = (int)t;
            if (_counts[n] == HistoryLength)
            {
                for (int k = 1; k < HistoryLength; k++) _history[n, k - 1] = _history[n, k];
                _history[n, HistoryLength - 1] = losses[i];
            }
            else _history[n, _counts[n]++] = losses[i];
        }
    }

    /// <summary>
    /// The sampling probabilities p_t: uniform before warm-up, afterwards (1 − u)·√E[L_t²]/Σ_s √E[L_s²] + u/T with the
    /// uniform share u (uniform too while every L_t is still 0).
    /// </summary>
    public double[] Probabilities()
    {
        int count = Timesteps;
        var p = new double[count];
        if (!IsWarm)
        {
            Array.Fill(p, 1.0 / count);
            return p;
        }
        for (int n = 0; n < count; n++)
        {
            double sumSquares = 0;
            for (int k = 0; k < HistoryLength; k++) sumSquares += _history[n, k] * _history[n, k];
            p[n] = Math.Sqrt(sumSquares / HistoryLength);
        }
        double total = p.Sum();
        for (int n = 0; n < count; n++) p[n] = total > 0 ? (1 - _uniformShare) * p[n] / total + _uniformShare / count : 1.0 / count;
        return p;
    }

    /// <summary>
    /// Draws one timestep per uniform value in [0, 1) by inverting the distribution of <see cref="Probabilities"/>, and its
    /// weight 1/(T·p_t). Before warm-up t = ⌊u·T⌋ with weight 1, the same timestep as
    /// <see cref="Randomness.SeededNoise.UniformInt"/> draws from the same uniform.
    /// </summary>
    public (long[] Timesteps, double[] Weights) Sample(ReadOnlySpan<double> uniforms)
    {
        int count = Timesteps;
        var timesteps = new long[uniforms.Length];
        var weights = new double[uniforms.Length];
        if (!IsWarm)
        {
            for (int i = 0; i < uniforms.Length; i++) (timesteps[i], weights[i]) = (Math.Min(count - 1, (long)Math.Floor(uniforms[i] * count)), 1.0);
            return (timesteps, weights);
        }
        var p = Probabilities();
        var cumulative = new double[count];
        double running = 0;
        for (int n = 0; n < count; n++) cumulative[n] = running += p[n];
        for (int i = 0; i < uniforms.Length; i++)
        {
            double target = uniforms[i] * running;
            int found = Array.BinarySearch(cumulative, target);
            int n = Math.Min(count - 1, found >= 0 ? found + 1 : ~found);
            while (n > 0 && p[n] == 0) n--;
            timesteps[i] = n;
            weights[i] = 1 / (count * p[n]);
        }
        return (timesteps, weights);
    }

    /// <summary>
    /// The state for a checkpoint: float64 [T, 1 + <see cref="HistoryLength"/>], per timestep the number of values held,
    /// then the values, oldest first (unused slots 0).
    /// </summary>
    public Tensor ToState()
    {
        int count = Timesteps;
        var state = new double[count, 1 + HistoryLength];
        for (int n = 0; n < count; n++)
        {
            state[n, 0] = _counts[n];
            for (int k = 0; k < HistoryLength; k++) state[n, 1 + k] = _history[n, k];
        }
        return tensor(state, dtype: ScalarType.Float64);
    }

    /// <summary>Restores the state written by <see cref="ToState"/>; throws a <see cref="DiffuseException"/> naming what does not fit.</summary>
    public static TimestepImportance FromState(Tensor state, double uniformShare = DefaultUniformShare)
    {
        if (state.dim() != 2 || state.shape[1] != 1 + HistoryLength || state.shape[0] < 1)
            throw new DiffuseException($"the timestep-importance state has shape [{string.Join(", ", state.shape)}]; expected [T, {1 + HistoryLength}].");
        var values = state.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        var importance = new TimestepImportance((int)state.shape[0], uniformShare);
        for (int n = 0; n < importance.Timesteps; n++)
        {
            double held = values[n * (1 + HistoryLength)];
            if (!(held >= 0 && held <= HistoryLength && held == Math.Floor(held)))
                throw new DiffuseException($"the timestep-importance state holds {held} values at timestep {n}; expected a whole number from 0 to {HistoryLength}.");
            importance._counts[n] = (int)held;
            for (int k = 0; k < HistoryLength; k++) importance._history[n, k] = values[n * (1 + HistoryLength) + 1 + k];
        }
        return importance;
    }
}
